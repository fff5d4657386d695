//! The OpenAPI document and Swagger UI, served from the binary: the UI's
//! files are vendored at build time, so nothing is fetched at build or run
//! time (DEPENDENCIES.md, utoipa).

use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::Full;

use crate::http::router::PathParams;
use crate::http::{ApiError, Request, Response};

static PUBLIC: LazyLock<Bytes> = LazyLock::new(|| Bytes::from(crate::http::openapi::document()));
static ADMIN: LazyLock<Bytes> =
    LazyLock::new(|| Bytes::from(crate::http::openapi::admin_document()));

/// The OpenAPI document a listener serves at `/openapi.json`, and its
/// Swagger UI at `/docs` reads: the public one, or the admin one on the
/// admin listener.
#[derive(Clone)]
pub struct Document(Bytes);

impl Document {
    pub fn public() -> Self {
        Self(PUBLIC.clone())
    }

    pub fn admin() -> Self {
        Self(ADMIN.clone())
    }
}

static SWAGGER: LazyLock<Arc<utoipa_swagger_ui::Config<'static>>> = LazyLock::new(|| {
    Arc::new(utoipa_swagger_ui::Config::from("/openapi.json").persist_authorization(false))
});

pub async fn openapi_json(document: Document, _: Request) -> Result<Response, ApiError> {
    let mut response = http::Response::new(Full::new(document.0));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// `/docs` and `/docs/{*file}`. The index page refers to its assets as
/// `./name`; it is served at `/docs` as well as `/docs/`, so those links are
/// made absolute.
pub async fn swagger_ui(_: Document, request: Request) -> Result<Response, ApiError> {
    let file = request
        .extensions()
        .get::<PathParams>()
        .and_then(|p| p.get("file"))
        .unwrap_or("");
    let served = utoipa_swagger_ui::serve(file, SWAGGER.clone())
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("swagger ui: {e}")))?
        .ok_or_else(|| ApiError::not_found("no such documentation file"))?;
    let bytes = if file.is_empty() || file == "index.html" {
        let page = String::from_utf8_lossy(&served.bytes)
            .replace("\"./", "\"/docs/")
            .replace("\"index.css\"", "\"/docs/index.css\"");
        Bytes::from(page)
    } else {
        Bytes::from(served.bytes.into_owned())
    };
    let mut response = http::Response::new(Full::new(bytes));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&served.content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if served.gzpipped {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok(response)
}
