// The Portcullis admin API client: openapi-fetch over the types generated
// from openapi/admin.json (`just ts-client` regenerates them). The admin API
// listens on its own address (ADMIN_ADDR), never the public one; a key
// comes from `portcullis admin-keys create --name NAME [--read-only]`.
import createClient, { type Client } from "openapi-fetch";

import type { components, paths } from "./admin-schema.js";

export type { components as adminComponents, paths as adminPaths };
export type AdminUser = components["schemas"]["AdminUser"];
export type AdminUserDetail = components["schemas"]["AdminUserDetail"];
export type AdminUsersPage = components["schemas"]["UsersPage"];

export type PortcullisAdminClient = Client<paths>;

/**
 * A client for the admin API at `baseUrl` (e.g. `http://127.0.0.1:8001`)
 * that sends `key` with every request. Keep the key on a server: it acts on
 * every account.
 */
export function createAdminClient(
  baseUrl: string,
  key: string,
  init: { fetch?: typeof fetch } = {},
): PortcullisAdminClient {
  return createClient<paths>({
    baseUrl,
    fetch: init.fetch,
    headers: { Authorization: `Bearer ${key}` },
  });
}
