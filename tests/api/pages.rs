//! CONTRACT.md, "Pages for the links in emails": what the pages send with
//! them (the browser test in tests/browser drives them for real).

use crate::helpers::*;

#[tokio::test]
async fn the_pages_forbid_inline_code_framing_caching_and_referrers() {
    let app = spawn_app().await;
    let token = "A".repeat(43);

    for path in ["/reset-password", "/verify-email"] {
        let response = app.get(&format!("{path}?token={token}")).await;
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'self'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["x-frame-options"], "DENY");
        let html = response.text().await.unwrap();
        assert!(!html.contains("<script>"), "no inline script");
        assert!(!html.contains("style="), "no inline style");
        assert!(!html.contains("http"), "nothing from another origin");
    }
    for asset in ["/pages/pages.js", "/pages/pages.css"] {
        assert_eq!(app.get(asset).await.status(), 200, "{asset}");
    }
}

#[tokio::test]
async fn the_verify_page_escapes_what_it_is_given() {
    let app = spawn_app().await;

    let response = app
        .get("/verify-email?token=%22%3E%3Cscript%3Ealert(1)%3C/script%3E")
        .await;

    let html = response.text().await.unwrap();
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(html.contains("&quot;&gt;&lt;script&gt;"), "{html}");
}

#[tokio::test]
async fn pages_enabled_false_leaves_them_to_your_own_frontend() {
    let app = spawn_app_with(|vars| {
        vars.insert("PAGES_ENABLED".into(), "false".into());
    })
    .await;

    for path in ["/reset-password", "/verify-email", "/pages/pages.js"] {
        assert_eq!(app.get(path).await.status(), 404, "{path}");
    }
}
