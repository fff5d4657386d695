//! A small router: (method, path template) -> handler. It answers 404 and
//! 405 (with `Allow`) as problems, hands path parameters to handlers through
//! the request extensions, and writes the matched template into the response
//! extensions, where the metrics and access-log layers read it (they cannot
//! know the route before routing, and raw paths must never become labels).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Method};
use tower::util::{BoxCloneSyncService, ServiceExt};
use tower::{Layer, Service};

use super::layers::BoxFuture;
use super::layers::correlation_id::CorrelationId;
use super::{ApiError, Handler, Request, Response};

/// The route label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

/// The template of the route that answered, e.g. `/api/v1/users/me/sessions/{id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchedRoute(pub &'static str);

impl MatchedRoute {
    pub fn of(response: &Response) -> &'static str {
        response
            .extensions()
            .get::<MatchedRoute>()
            .map_or(UNMATCHED, |r| r.0)
    }
}

/// The values of a route's `{name}` segments.
#[derive(Debug, Clone, Default)]
pub struct PathParams(Vec<(&'static str, String)>);

impl PathParams {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Copy)]
enum Segment {
    Literal(&'static str),
    Param(&'static str),
    /// `{*name}`: the rest of the path, possibly empty; last segment only.
    Rest(&'static str),
}

#[derive(Clone)]
struct Route {
    method: Method,
    template: &'static str,
    segments: Vec<Segment>,
    handler: Handler,
}

/// Built once at start; cloning shares the route table.
#[derive(Clone, Default)]
pub struct Router {
    routes: Arc<Vec<Route>>,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route. Panics on a malformed template: routes are fixed at
    /// build time, so this fails the first test, not a request.
    pub fn route(mut self, method: Method, template: &'static str, handler: Handler) -> Self {
        let segments = parse_template(template);
        Arc::get_mut(&mut self.routes)
            .expect("routes are added before the router is cloned")
            .push(Route {
                method,
                template,
                segments,
                handler,
            });
        self
    }

    /// Wraps every route added so far in `layer`; used for the layers that
    /// guard only the protected routes (auth, the denylist).
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<Handler>,
        L::Service: Service<Request, Response = Response, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        for route in Arc::get_mut(&mut self.routes)
            .expect("routes are layered before the router is cloned")
            .iter_mut()
        {
            let handler = route.handler.clone();
            route.handler = BoxCloneSyncService::new(layer.layer(handler));
        }
        self
    }

    /// Every route's method and template.
    pub fn routes(&self) -> impl Iterator<Item = (&Method, &'static str)> {
        self.routes
            .iter()
            .map(|route| (&route.method, route.template))
    }

    /// Appends the routes of `other`.
    pub fn merge(mut self, other: Router) -> Self {
        let routes = Arc::get_mut(&mut self.routes).expect("routes are merged before cloning");
        routes.extend(other.routes.iter().cloned());
        self
    }

    fn dispatch(&self, mut request: Request) -> BoxFuture<Result<Response, Infallible>> {
        let path = request.uri().path().to_owned();
        let mut allowed: Vec<&Method> = Vec::new();
        for route in self.routes.iter() {
            let Some(params) = match_path(&route.segments, &path) else {
                continue;
            };
            let method_fits = route.method == *request.method()
                || (route.method == Method::GET && request.method() == Method::HEAD);
            if !method_fits {
                allowed.push(&route.method);
                continue;
            }
            request.extensions_mut().insert(params);
            let template = route.template;
            let handler = route.handler.clone();
            return Box::pin(async move {
                let mut response = handler.oneshot(request).await?;
                response.extensions_mut().insert(MatchedRoute(template));
                Ok(response)
            });
        }
        let correlation_id = CorrelationId::of(&request);
        let error = if allowed.is_empty() {
            ApiError::not_found("no resource at this path")
        } else {
            ApiError::method_not_allowed(allow_header(&allowed))
        };
        Box::pin(std::future::ready(Ok(error.into_response(&correlation_id))))
    }
}

impl Service<Request> for Router {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.dispatch(request)
    }
}

/// Turns `async fn(State, Request) -> Result<Response, ApiError>` into a
/// [`Handler`]; an error is rendered as a problem with the request's
/// correlation id.
pub fn handler<T, F, Fut>(state: T, f: F) -> Handler
where
    T: Clone + Send + Sync + 'static,
    F: Fn(T, Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response, ApiError>> + Send + 'static,
{
    BoxCloneSyncService::new(tower::service_fn(move |request: Request| {
        let correlation_id = CorrelationId::of(&request);
        let future = f(state.clone(), request);
        async move {
            Ok::<_, Infallible>(match future.await {
                Ok(response) => response,
                Err(error) => error.into_response(&correlation_id),
            })
        }
    }))
}

fn allow_header(methods: &[&Method]) -> HeaderValue {
    let mut names: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
    if names.contains(&"GET") {
        names.push("HEAD");
    }
    names.sort_unstable();
    names.dedup();
    HeaderValue::from_str(&names.join(", ")).expect("method names are valid header text")
}

fn parse_template(template: &'static str) -> Vec<Segment> {
    assert!(
        template.starts_with('/'),
        "route `{template}` must start with /"
    );
    let parts: Vec<&'static str> = template[1..].split('/').collect();
    let last = parts.len() - 1;
    parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            if let Some(name) = part.strip_prefix("{*").and_then(|p| p.strip_suffix('}')) {
                assert!(i == last, "`{{*{name}}}` must end route `{template}`");
                Segment::Rest(name)
            } else if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Segment::Param(name)
            } else {
                Segment::Literal(part)
            }
        })
        .collect()
}

fn match_path(segments: &[Segment], path: &str) -> Option<PathParams> {
    let mut params = PathParams::default();
    // `None` once the path is used up; `Some("")` after a trailing slash.
    let mut rest = Some(path.strip_prefix('/')?);
    for segment in segments {
        let current = rest?;
        if let Segment::Rest(name) = segment {
            params.0.push((name, current.to_owned()));
            return Some(params);
        }
        let (part, tail) = match current.split_once('/') {
            Some((part, tail)) => (part, Some(tail)),
            None => (current, None),
        };
        match segment {
            Segment::Literal(literal) if *literal == part => {}
            Segment::Param(name) if !part.is_empty() => params.0.push((name, part.to_owned())),
            _ => return None,
        }
        rest = tail;
    }
    rest.is_none().then_some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(template: &'static str, path: &str) -> Option<Vec<(&'static str, String)>> {
        match_path(&parse_template(template), path).map(|p| p.0)
    }

    #[test]
    fn literal_routes_match_exactly() {
        assert_eq!(matches("/healthz", "/healthz"), Some(vec![]));
        assert_eq!(matches("/healthz", "/healthz/"), None);
        assert_eq!(matches("/healthz", "/health"), None);
        assert_eq!(
            matches("/api/v1/users/me", "/api/v1/users/me"),
            Some(vec![])
        );
        assert_eq!(matches("/api/v1/users/me", "/api/v1/users"), None);
        assert_eq!(matches("/api/v1/users/me", "/api/v1/users/me/x"), None);
    }

    #[test]
    fn parameters_take_one_non_empty_segment() {
        assert_eq!(
            matches(
                "/api/v1/users/me/sessions/{id}",
                "/api/v1/users/me/sessions/abc"
            ),
            Some(vec![("id", "abc".to_owned())])
        );
        assert_eq!(
            matches(
                "/api/v1/users/me/sessions/{id}",
                "/api/v1/users/me/sessions/"
            ),
            None
        );
        assert_eq!(
            matches(
                "/api/v1/users/me/sessions/{id}",
                "/api/v1/users/me/sessions/a/b"
            ),
            None
        );
    }

    #[test]
    fn rest_segments_take_the_remainder() {
        assert_eq!(
            matches("/docs/{*file}", "/docs/swagger-ui.css"),
            Some(vec![("file", "swagger-ui.css".to_owned())])
        );
        assert_eq!(
            matches("/docs/{*file}", "/docs/"),
            Some(vec![("file", String::new())])
        );
        assert_eq!(matches("/docs/{*file}", "/docs"), None);
    }

    #[test]
    fn allow_lists_head_with_get() {
        assert_eq!(allow_header(&[&Method::GET]), "GET, HEAD");
        assert_eq!(
            allow_header(&[&Method::PATCH, &Method::GET]),
            "GET, HEAD, PATCH"
        );
    }
}
