//! Reads the node's own Prometheus text (`/metrics`) back into numbers: the
//! dashboard's one narrow handle on what every module records, so no module
//! needs to know the dashboard exists. Pure: text in, samples out.

use std::collections::BTreeMap;

/// One sample: a series name, its labels (sorted by name) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series name, with its `_bucket`/`_sum`/`_count` suffix if it has one.
    pub name: String,
    /// The labels, sorted by name.
    pub labels: BTreeMap<String, String>,
    /// The value; `+Inf` and `-Inf` read as infinities.
    pub value: f64,
}

impl Sample {
    /// The value of label `name`; empty if the sample has none.
    pub fn label(&self, name: &str) -> &str {
        self.labels
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }
}

/// Every sample of `text` whose name starts with `prefix`; comments and
/// lines that do not parse are skipped.
pub fn parse(text: &str, prefix: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let (series, value) = match line.find('{') {
        Some(open) => {
            let close = line.rfind('}')?;
            let labels = parse_labels(line.get(open + 1..close)?)?;
            let value = line.get(close + 1..)?.split_whitespace().next()?;
            ((line.get(..open)?, labels), value)
        }
        None => {
            let mut parts = line.split_whitespace();
            ((parts.next()?, BTreeMap::new()), parts.next()?)
        }
    };
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: series.0.to_owned(),
        labels: series.1,
        value,
    })
}

/// `a="x",b="y\"z"` into a map, with `\\`, `\"` and `\n` unescaped.
fn parse_labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let name = rest.get(..eq)?.trim().to_owned();
        rest = rest.get(eq + 1..)?.strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        labels.insert(name, value);
        rest = rest.get(end + 1..)?.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Some(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# TYPE switchboard_connections gauge
switchboard_connections{tenant="demo",hub="chat"} 3
switchboard_messages_in_total{tenant="demo",hub="chat"} 17
switchboard_limit_hits_total{tenant="a\"b",hub="h",limit="connections"} 2
switchboard_backplane_lost_messages_total 4
other_series 1
switchboard_invocation_duration_seconds_bucket{tenant="demo",hub="chat",method="send",le="+Inf"} 9
not a line {
"#;

    #[test]
    fn parses_names_labels_and_values() {
        let samples = parse(TEXT, "switchboard_");
        assert_eq!(samples.len(), 5, "{samples:?}");
        assert_eq!(samples[0].name, "switchboard_connections");
        assert_eq!(samples[0].label("hub"), "chat");
        assert_eq!(samples[0].value, 3.0);
        assert_eq!(samples[2].label("tenant"), "a\"b");
        assert_eq!(samples[3].labels.len(), 0);
        assert_eq!(samples[3].value, 4.0);
        assert_eq!(samples[4].label("le"), "+Inf");
        assert_eq!(samples[4].value, 9.0);
    }
}
