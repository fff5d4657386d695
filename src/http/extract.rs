//! Reading requests: bounded bodies, JSON and form bodies mapped onto the
//! contract's statuses, cookies, the client address.
//!
//! The body-limit layer has already wrapped the body in `Limited`;
//! overflowing it here is the same 413 as a declared oversize
//! `Content-Length` (DEPENDENCIES.md, hyper: bodies). A body that does not
//! parse is 400; one that parses but does not fit the schema is 422 with
//! field errors that never quote the input, which may be a password
//! (DEPENDENCIES.md, serde).

use std::net::IpAddr;

use bytes::Bytes;
use http::{HeaderMap, header};
use http_body_util::BodyExt;
use http_body_util::{LengthLimitError, Limited};
use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::server::PeerAddr;
use super::{ApiError, MAX_BODY_BYTES, Request};
use crate::domain::{FieldError, has_control_characters};

/// Reads the whole body; 413 past the limit, 400 if the client broke off.
pub async fn read_body<B>(body: Limited<B>) -> Result<Bytes, ApiError>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match body.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::payload_too_large(MAX_BODY_BYTES))
        }
        Err(_) => Err(ApiError::bad_request("the request body could not be read")),
    }
}

/// The media type of a request body, as far as routing it matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    Form,
}

/// Classifies `Content-Type`; anything else is 415.
pub fn body_kind(headers: &HeaderMap, accept_form: bool) -> Result<BodyKind, ApiError> {
    let expected = if accept_form {
        "send application/json or application/x-www-form-urlencoded"
    } else {
        "send application/json"
    };
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::unsupported_media_type(expected))?;
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let is_json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if is_json {
        Ok(BodyKind::Json)
    } else if accept_form && essence == "application/x-www-form-urlencoded" {
        Ok(BodyKind::Form)
    } else {
        Err(ApiError::unsupported_media_type(expected))
    }
}

/// Reads a JSON body into `T`: 415, 413, 400 or 422 as the contract says.
pub async fn json<T: DeserializeOwned>(request: Request) -> Result<T, ApiError> {
    body_kind(request.headers(), false)?;
    let bytes = read_body(request.into_body()).await?;
    parse_json(&bytes)
}

/// Parses JSON bytes into `T` (400 or 422).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|_| ApiError::bad_request("the request body is not valid JSON"))?;
    // Every body is an object; serde's derived structs would also take an
    // array and read its items as the fields in order.
    if !value.is_object() {
        return Err(ApiError::validation(vec![FieldError::new(
            "body",
            "must be a JSON object",
        )]));
    }
    let mut errors = Vec::new();
    control_characters(&value, "", &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        ApiError::validation(vec![schema_error(&path, &error.into_inner().to_string())])
    })
}

/// Collects a field error for every string holding a control character.
fn control_characters(value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    match value {
        Value::String(text) if has_control_characters(text) => errors.push(FieldError::new(
            if path.is_empty() { "body" } else { path },
            "must not contain control characters",
        )),
        Value::Object(map) => {
            for (key, item) in map {
                let field = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                control_characters(item, &field, errors);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                control_characters(item, &format!("{path}[{i}]"), errors);
            }
        }
        _ => {}
    }
}

/// Turns a serde message into a field error without echoing input: serde
/// quotes the offending value ("invalid type: string \"hunter2\"").
fn schema_error(path: &str, message: &str) -> FieldError {
    let parent = if path == "." { "" } else { path };
    let join = |name: &str| {
        if parent.is_empty() {
            name.to_owned()
        } else {
            format!("{parent}.{name}")
        }
    };
    if let Some(name) = backticked(message, "missing field `") {
        return FieldError::new(join(name), "is required");
    }
    if let Some(name) = backticked(message, "unknown field `") {
        // Here the path already ends with the unknown key.
        let field = if parent.is_empty() { name } else { parent };
        let field: String = field.chars().take(64).collect();
        return FieldError::new(field, "is not an accepted field");
    }
    let field = if parent.is_empty() {
        "body".to_owned()
    } else {
        parent.to_owned()
    };
    if message.starts_with("invalid type: null") {
        return FieldError::new(field, "must not be null");
    }
    if message.starts_with("invalid type") {
        let expected = message
            .rsplit_once(", expected ")
            .map(|(_, e)| e)
            .unwrap_or("another type");
        let expected = match expected {
            e if e.starts_with("struct ") => "a JSON object",
            e if e.contains("string") => "a string",
            e => e,
        };
        return FieldError::new(field, format!("must be {expected}"));
    }
    FieldError::new(field, "is invalid")
}

fn backticked<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    message.strip_prefix(prefix)?.split('`').next()
}

/// The fields of an `application/x-www-form-urlencoded` body (400 if it
/// does not decode; control characters are 422).
pub fn parse_form(bytes: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes)
        .map_err(|_| ApiError::bad_request("the request body is not a valid form"))?;
    let errors: Vec<FieldError> = fields
        .iter()
        .filter(|(_, value)| has_control_characters(value))
        .map(|(name, _)| {
            FieldError::new(
                name.chars().take(64).collect::<String>(),
                "must not contain control characters",
            )
        })
        .collect();
    if errors.is_empty() {
        Ok(fields)
    } else {
        Err(ApiError::validation(errors))
    }
}

/// The value of cookie `name`, from any `Cookie` header.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().trim_matches('"'))
}

/// The client's address: the peer, unless the peer is a trusted proxy, in
/// which case the right-most `X-Forwarded-For` entry that is not itself a
/// trusted proxy (CONTRACT.md, "Brute force").
pub fn client_ip(request: &Request, trusted_proxies: &[IpNet]) -> IpAddr {
    let peer = request
        .extensions()
        .get::<PeerAddr>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |p| p.0.ip());
    let peer = canonical(peer);
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer) {
        return peer;
    }
    let forwarded = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    let mut client = peer;
    for entry in forwarded.iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(ip) => {
                client = canonical(ip);
                if !trusted(&client) {
                    break;
                }
            }
            // An entry we cannot read ends the chain we can believe.
            Err(_) => break,
        }
    }
    client
}

/// IPv4-mapped IPv6 addresses count as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The `User-Agent` header, if it is text.
/// Where a request came from, for the security events it causes: the
/// client's address (as [`client_ip`] finds it), user agent and
/// correlation id.
pub fn origin(request: &Request, trusted_proxies: &[IpNet]) -> crate::services::events::Origin {
    crate::services::events::Origin {
        address: client_ip(request, trusted_proxies),
        user_agent: user_agent(request).map(str::to_owned),
        correlation_id: crate::http::layers::correlation_id::CorrelationId::of(request)
            .as_str()
            .to_owned(),
        admin: None,
    }
}

pub fn user_agent(request: &Request) -> Option<&str> {
    request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
}
/// A request's query string, parsed once.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn of(request: &Request) -> Result<Self, ApiError> {
        let pairs = request
            .uri()
            .query()
            .map(serde_urlencoded::from_str)
            .transpose()
            .map_err(|_| {
                ApiError::validation(vec![FieldError::new("query", "is not a query string")])
            })?
            .unwrap_or_default();
        Ok(Self(pairs))
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// `limit` of a paged list: an integer, 20 when absent (the range is
    /// the service's to check).
    pub fn limit(&self) -> Result<u32, ApiError> {
        use crate::services::paging::{DEFAULT_PAGE, MAX_PAGE};
        match self.get("limit") {
            None => Ok(DEFAULT_PAGE),
            Some(text) => text.parse::<u32>().map_err(|_| {
                ApiError::validation(vec![FieldError::new(
                    "limit",
                    format!("must be an integer from 1 to {MAX_PAGE}"),
                )])
            }),
        }
    }

    /// `true` or `false`, if present.
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.get(name)
            .map(|text| match text {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(ApiError::validation(vec![FieldError::new(
                    name,
                    "must be true or false",
                )])),
            })
            .transpose()
    }
}

/// The UUID in the path's `{name}`; a malformed one names nothing (404).
pub fn path_id(request: &Request, name: &str) -> Result<uuid::Uuid, ApiError> {
    request
        .extensions()
        .get::<crate::http::router::PathParams>()
        .and_then(|params| params.get(name))
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
        .ok_or_else(|| ApiError::not_found("no such resource"))
}

/// The [`origin`] of a request on the admin listener, naming the admin key
/// it came with.
pub fn admin_origin(
    request: &Request,
    trusted_proxies: &[IpNet],
) -> Result<crate::services::events::Origin, ApiError> {
    let key = crate::http::layers::admin_auth::AdminCaller::of(request)?;
    Ok(crate::services::events::Origin {
        admin: Some(key.name.clone()),
        ..origin(request, trusted_proxies)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Login {
        email: String,
        password: String,
    }

    fn errors_of(result: Result<Login, ApiError>) -> (u16, Vec<FieldError>) {
        match result.unwrap_err() {
            ApiError::Problem(problem) => (problem.status.as_u16(), problem.errors),
            ApiError::Internal(e) => panic!("{e}"),
        }
    }

    #[test]
    fn json_that_does_not_parse_is_400() {
        for body in [&b"{"[..], b"", b"not json", b"{\"email\": }", b"\xff\xfe"] {
            assert_eq!(errors_of(parse_json(body)).0, 400, "{body:?}");
        }
    }

    #[test]
    fn json_that_does_not_fit_is_422_naming_the_field_without_its_value() {
        let cases: [(&str, &str); 6] = [
            (r#"{"email":"a@example.com"}"#, "password"),
            (
                r#"{"email":"a@example.com","password":"hunter2","admin":true}"#,
                "admin",
            ),
            (r#"{"email":"a@example.com","password":12345}"#, "password"),
            (r#"{"email":null,"password":"hunter2"}"#, "email"),
            (
                r#"{"email":"a@example.com","password":"hun\u0000ter2"}"#,
                "password",
            ),
            (r#"["email"]"#, "body"),
        ];
        for (body, field) in cases {
            let (status, errors) = errors_of(parse_json(body.as_bytes()));
            assert_eq!(status, 422, "{body}");
            assert_eq!(errors[0].field, field, "{body}");
            assert!(!errors[0].message.contains("hunter2"), "{body}");
            assert!(!errors[0].message.contains("12345"), "{body}");
        }
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, "a=1; refresh_token=abc".parse().unwrap());
        headers.append(header::COOKIE, "b=2".parse().unwrap());
        assert_eq!(cookie(&headers, "refresh_token"), Some("abc"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn content_types_are_classified() {
        let mut headers = HeaderMap::new();
        assert!(body_kind(&headers, false).is_err());
        headers.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert_eq!(body_kind(&headers, false).unwrap(), BodyKind::Json);
        headers.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        assert!(body_kind(&headers, false).is_err());
        assert_eq!(body_kind(&headers, true).unwrap(), BodyKind::Form);
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(body_kind(&headers, true).is_err());
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole() {
        let body = Limited::new(Full::new(Bytes::from_static(b"{}")), MAX_BODY_BYTES);
        assert_eq!(read_body(body).await.unwrap(), Bytes::from_static(b"{}"));
    }

    #[tokio::test]
    async fn a_streamed_body_over_the_limit_is_413() {
        // Many small frames, as a chunked request arrives.
        let frames = (0..70).map(|_| {
            Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(vec![b'a'; 1024])))
        });
        let body = StreamBody::new(futures_util::stream::iter(frames)).boxed();
        let error = read_body(Limited::new(body, MAX_BODY_BYTES))
            .await
            .unwrap_err();
        assert_eq!(error.status(), http::StatusCode::PAYLOAD_TOO_LARGE);
    }
}
