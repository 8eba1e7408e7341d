//! The web UI: a page, its scripts and its style, plain files in `rest/ui/` embedded in the
//! binary and served beside the REST API (no JavaScript build step, nothing fetched from
//! elsewhere).
//!
//! The page reads the API it is served with (`/overview`, `/jobs/{id}`, …) once a second and
//! calls the mutating routes with the bearer token the user types in; it never holds the token
//! anywhere but the tab's `sessionStorage` and the `Authorization` header.
//!
//! | Route                  | File                                                    |
//! |------------------------|---------------------------------------------------------|
//! | `GET /`                | `index.html`: the page (hash routes: `#/jobs/{id}`, …)  |
//! | `GET /ui/{file}`       | `app.js`, `graph.js`, `format.js`, `style.css`, the icon |
//!
//! Every answer is `Cache-Control: no-cache` (a new binary's UI is picked up on reload) and
//! `X-Content-Type-Options: nosniff`; the page's Content-Security-Policy allows only this
//! origin's scripts, styles and API, and no framing (the action buttons cannot be overlaid by
//! another site). Any other `/ui/…` path is the API's 404.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// What the page may load and where it may be shown: this origin only, no inline script.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One file of the UI.
struct Asset {
    /// The route serving it.
    route: &'static str,
    content_type: &'static str,
    body: &'static str,
}

static ASSETS: [Asset; 6] = [
    Asset { route: "/", content_type: "text/html; charset=utf-8", body: include_str!("ui/index.html") },
    Asset { route: "/ui/app.js", content_type: "text/javascript; charset=utf-8", body: include_str!("ui/app.js") },
    Asset { route: "/ui/graph.js", content_type: "text/javascript; charset=utf-8", body: include_str!("ui/graph.js") },
    Asset {
        route: "/ui/format.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("ui/format.js"),
    },
    Asset { route: "/ui/style.css", content_type: "text/css; charset=utf-8", body: include_str!("ui/style.css") },
    Asset { route: "/ui/favicon.svg", content_type: "image/svg+xml", body: include_str!("ui/favicon.svg") },
];

/// The UI's routes, to merge into the API's router (any state: they read none).
pub(super) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    ASSETS.iter().fold(Router::new(), |router, asset| router.route(asset.route, get(move || serve(asset))))
}

async fn serve(asset: &'static Asset) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if asset.route == "/" {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    }
    (headers, asset.body).into_response()
}
