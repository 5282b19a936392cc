//! CSV answers (`Accept: text/csv`): one writer of a line, for the history export and the
//! reports alike.

/// Whether the request asks for CSV.
pub fn wanted(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"))
}

/// One CSV line of `fields`, ended by a line feed.
pub fn line<S: AsRef<str>>(fields: &[S]) -> String {
    let quoted: Vec<String> = fields.iter().map(|f| field(f.as_ref())).collect();
    quoted.join(",") + "\n"
}

/// A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break, and
/// with a leading `'` when a spreadsheet would read it as a formula (a text starting with
/// `=`, `+`, `-` or `@` that is not a number).
fn field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) && text.parse::<f64>().is_err() {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("-1.00"), "-1.00");
        assert_eq!(field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(line(&["a", "b,c"]), "a,\"b,c\"\n");
    }
}
