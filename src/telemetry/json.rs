//! The JSON log line: `{"timestamp","level","target","message", ...fields}`,
//! one object per line, flat. tracing-subscriber's own JSON format nests
//! span fields under `span`/`spans` (DEPENDENCIES.md, tracing); here the
//! fields of every enclosing span sit at the top level beside the event's
//! own, so an event inside a request span carries `correlation_id`.
//!
//! Every request logs a line, so the line is built without a map or a
//! reparse: [`SpanFieldsLayer`] keeps each span's fields already encoded in
//! the span's extensions, and [`FlatJson`] encodes the event's fields
//! straight into the line. A field of the event wins over a span's field of
//! the same name, and an inner span's over an outer one's.

use std::fmt::{self, Write as _};

use time::format_description::well_known::Rfc3339;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Keeps every span's fields, encoded, for [`FlatJson`].
pub struct SpanFieldsLayer;

/// A span's fields, each value already JSON.
struct SpanFields(Fields);

impl<S> Layer<S> for SpanFieldsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
            values.record(fields);
        }
    }
}

/// The span fields are kept by [`SpanFieldsLayer`]: the fmt layer need not
/// format them too.
pub struct NoSpanFields;

impl<'w> FormatFields<'w> for NoSpanFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        _writer: Writer<'w>,
        _fields: R,
    ) -> fmt::Result {
        Ok(())
    }
}

/// Writes one flat JSON object per event.
pub struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let timestamp = time::OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .map_err(|_| fmt::Error)?;

        let mut line = String::with_capacity(256);
        line.push_str("{\"timestamp\":");
        push_string(&mut line, &timestamp);
        line.push_str(",\"level\":");
        push_string(&mut line, event.metadata().level().as_str());
        // Events bridged from the `log` crate (refinery, tokio-postgres) name
        // their real target in `log.target`; the other `log.*` keys are
        // noise, and `log.file` is an absolute build path.
        line.push_str(",\"target\":");
        match fields.get("log.target") {
            Some(target) => line.push_str(target),
            None => push_string(&mut line, event.metadata().target()),
        }
        line.push_str(",\"message\":");
        line.push_str(fields.get("message").unwrap_or("\"\""));

        let mut written: Vec<&str> = Vec::with_capacity(8);
        let mut push_field = |line: &mut String, name: &'static str, value: &str| {
            if name == "message" || name.starts_with("log.") || written.contains(&name) {
                return;
            }
            written.push(name);
            line.push(',');
            push_string(line, name);
            line.push(':');
            line.push_str(value);
        };
        for (name, value) in &fields.0 {
            push_field(&mut line, name, value);
        }
        if let Some(scope) = ctx.event_scope() {
            // Innermost first, so the closest span's value wins.
            for span in scope {
                let extensions = span.extensions();
                if let Some(SpanFields(span_fields)) = extensions.get::<SpanFields>() {
                    for (name, value) in &span_fields.0 {
                        push_field(&mut line, name, value);
                    }
                }
            }
        }
        line.push('}');
        writeln!(writer, "{line}")
    }
}

/// Field names with their values, each encoded as JSON; a name recorded
/// again keeps its last value.
#[derive(Default)]
struct Fields(Vec<(&'static str, String)>);

impl Fields {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    fn set(&mut self, name: &'static str, value: String) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut text = String::with_capacity(40);
        text.push('"');
        let _ = write!(Escaped(&mut text), "{value:?}");
        text.push('"');
        self.set(field.name(), text);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let mut text = String::with_capacity(value.len() + 2);
        push_string(&mut text, value);
        self.set(field.name(), text);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name(), value.to_string());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field.name(), value.to_string());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        let text = if value.is_finite() {
            value.to_string()
        } else {
            "null".to_owned()
        };
        self.set(field.name(), text);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name(), value.to_string());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // The whole cause chain, on one line.
        let mut text = String::with_capacity(80);
        text.push('"');
        let _ = write!(Escaped(&mut text), "{value}");
        let mut source = value.source();
        while let Some(cause) = source {
            let _ = write!(Escaped(&mut text), ": {cause}");
            source = cause.source();
        }
        text.push('"');
        self.set(field.name(), text);
    }
}

/// `value` as a JSON string.
fn push_string(out: &mut String, value: &str) {
    out.push('"');
    push_escaped(out, value);
    out.push('"');
}

/// Escapes what JSON requires inside a string: `"`, `\` and control
/// characters.
fn push_escaped(out: &mut String, value: &str) {
    let mut start = 0;
    for (i, byte) in value.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        // Every byte escaped is ASCII, so `i` is a char boundary.
        out.push_str(&value[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&value[start..]);
}

/// Escapes what is written through it, for `write!` into a JSON string.
struct Escaped<'a>(&'a mut String);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        push_escaped(self.0, s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(log: impl FnOnce()) -> Vec<serde_json::Value> {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::registry().with(SpanFieldsLayer).with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(NoSpanFields)
                .event_format(FlatJson)
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, log);
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|line| serde_json::from_str(line).expect("each line is one JSON object"))
            .collect()
    }

    #[test]
    fn span_fields_sit_beside_the_event_fields() {
        let lines = lines(|| {
            let request = tracing::info_span!("request", correlation_id = "abc");
            let _entered = request.enter();
            tracing::info!(
                status = 200u16,
                latency_ms = 1.5,
                ok = true,
                "request completed"
            );
        });
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["message"], "request completed");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["target"], module_path!());
        assert_eq!(line["correlation_id"], "abc");
        assert_eq!(line["status"], 200);
        assert_eq!(line["latency_ms"], 1.5);
        assert_eq!(line["ok"], true);
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn the_event_wins_over_spans_and_the_inner_span_over_the_outer() {
        let lines = lines(|| {
            let outer = tracing::info_span!("outer", id = "outer", only_outer = 1);
            let _outer = outer.enter();
            let inner = tracing::info_span!("inner", id = "inner");
            let _inner = inner.enter();
            tracing::info!("from the spans");
            tracing::info!(id = "event", "from the event");
        });
        assert_eq!(lines[0]["id"], "inner");
        assert_eq!(lines[0]["only_outer"], 1);
        assert_eq!(lines[1]["id"], "event");
        // One key each: no name twice in a line.
        for line in &lines {
            let text = line.to_string();
            assert_eq!(text.matches("\"id\"").count(), 1, "{text}");
        }
    }

    #[test]
    fn fields_recorded_later_on_a_span_are_kept() {
        let lines = lines(|| {
            let span = tracing::info_span!("job", user_id = tracing::field::Empty);
            let _entered = span.enter();
            span.record("user_id", "u-1");
            tracing::info!("recorded");
        });
        assert_eq!(lines[0]["user_id"], "u-1");
    }

    #[test]
    fn strings_are_escaped_and_errors_keep_their_causes() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("outer \"failure\"")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let error = Outer(std::io::Error::other("inner\ncause"));
        let lines = lines(|| {
            let tricky = "quote \" backslash \\ newline \n tab \t bell \u{7} é";
            tracing::warn!(
                text = tricky,
                shown = %tricky,
                error = &error as &(dyn std::error::Error + 'static),
                nan = f64::NAN,
                "tricky"
            );
        });
        let tricky = "quote \" backslash \\ newline \n tab \t bell \u{7} é";
        assert_eq!(lines[0]["text"], tricky);
        assert_eq!(lines[0]["shown"], tricky);
        assert_eq!(lines[0]["error"], "outer \"failure\": inner\ncause");
        assert!(lines[0]["nan"].is_null());
    }

    #[test]
    fn log_crate_fields_give_the_target_and_are_dropped() {
        let lines = lines(|| {
            tracing::info!(
                log.target = "refinery::runner",
                log.file = "/build/path.rs",
                "applied"
            );
        });
        assert_eq!(lines[0]["target"], "refinery::runner");
        assert!(lines[0].get("log.file").is_none());
        assert!(lines[0].get("log.target").is_none());
    }
}
