//! CONTRACT.md, "Observability": HTTP metrics labelled by route template.

use crate::helpers::*;

async fn scrape(app: &TestApp) -> String {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    response.text().await.unwrap()
}

#[tokio::test]
async fn requests_are_counted_by_route_template_never_by_raw_path() {
    let app = spawn_app().await;
    app.get("/docs/swagger-ui.css").await;
    app.get("/healthz").await;
    for i in 0..50 {
        app.get(&format!("/unknown-{i}")).await;
    }

    let text = scrape(&app).await;

    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/docs/{*file}",status="200"}"#),
        "{text}"
    );
    assert!(text.contains(r#"http_requests_total{method="GET",route="/healthz",status="200"}"#));
    assert!(text.contains(r#"http_requests_total{method="GET",route="unmatched",status="404"}"#));
    assert!(!text.contains("swagger-ui.css"));
    assert!(!text.contains("unknown-"));
    assert!(text.contains("# TYPE http_request_duration_seconds histogram"));
    assert!(text.contains(
        r#"http_request_duration_seconds_bucket{method="GET",route="/healthz",le="0.005"}"#
    ));
    assert!(text.contains("http_requests_in_flight"));
}

#[tokio::test]
async fn process_and_build_metrics_are_exported() {
    let app = spawn_app().await;

    let text = scrape(&app).await;

    assert!(text.contains("process_resident_memory_bytes"));
    assert!(text.contains("process_cpu_seconds_total"));
    assert!(text.contains(&format!(
        r#"portcullis_build_info{{version="{}"}} 1"#,
        env!("CARGO_PKG_VERSION")
    )));
}

#[tokio::test]
async fn unknown_methods_do_not_create_new_label_values() {
    let app = spawn_app().await;
    for method in ["BREW", "PROPFIND", "X-ANYTHING"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        app.client
            .request(method, app.url("/healthz"))
            .send()
            .await
            .unwrap();
    }

    let text = scrape(&app).await;

    assert!(
        text.contains(r#"http_requests_total{method="OTHER",route="unmatched",status="405"}"#),
        "{text}"
    );
    assert!(!text.contains("BREW"));
}

#[tokio::test]
async fn a_thousand_unknown_paths_add_one_series() {
    let app = spawn_app().await;
    // Twice, so that the scrape's own series exist before the count.
    scrape(&app).await;
    let before = scrape(&app).await;
    let series = |text: &str| {
        text.lines()
            .filter(|l| {
                l.starts_with("http_requests_total{")
                    || l.starts_with("http_request_duration_seconds_bucket{")
            })
            .count()
    };
    let paths: Vec<String> = (0..1000)
        .map(|i| format!("/probe/{i}/{}", uuid::Uuid::new_v4()))
        .collect();
    for chunk in paths.chunks(50) {
        statuses_of(chunk.iter().map(|p| app.get(p))).await;
    }

    let after = scrape(&app).await;

    assert!(
        after.contains(r#"http_requests_total{method="GET",route="unmatched",status="404"} 1000"#)
    );
    // One counter series and one histogram (14 buckets) for `unmatched`.
    let added = series(&after) - series(&before);
    assert!(added <= 1 + 14, "{added} new series");
    assert!(!after.contains("/probe/"));
}

#[tokio::test]
async fn latency_histograms_have_the_documented_buckets() {
    let app = spawn_app().await;
    app.get("/healthz").await;

    let text = scrape(&app).await;

    for le in [
        "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
        "10", "+Inf",
    ] {
        let bucket = format!(
            r#"http_request_duration_seconds_bucket{{method="GET",route="/healthz",le="{le}"}}"#
        );
        assert!(text.contains(&bucket), "{bucket}");
    }
    assert!(text.contains(r#"http_request_duration_seconds_count{method="GET",route="/healthz"}"#));
    assert!(text.contains("db_pool_connections{state=\"in_use\"}"));
    assert!(text.contains("db_pool_max_connections 16"));
}
