// A parser of the Prometheus text exposition format (version 0.0.4), for the metrics tests:
// `# HELP` and `# TYPE` lines, samples `name{label="value",...} value [timestamp]` with the
// format's escapes in label values (\\, \", \n), and the special values NaN, +Inf, -Inf.
// Anything else is an error, so a malformed scrape fails the test instead of passing quietly.

/** Parses one exposition; returns {samples: [{name, labels, value}], types: Map, help: Map}. */
export function parsePrometheus(text) {
  const samples = [];
  const types = new Map();
  const help = new Map();
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n];
    if (line.trim() === '') continue;
    const fail = (why) => {
      throw new Error(`metrics line ${n + 1}: ${why}: ${JSON.stringify(line)}`);
    };
    if (line.startsWith('#')) {
      const m = line.match(/^#\s+(HELP|TYPE)\s+([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\s+(.*))?$/);
      if (!m) continue; // a plain comment
      if (m[1] === 'TYPE') {
        if (!/^(counter|gauge|histogram|summary|untyped)$/.test(m[3] ?? '')) fail('bad TYPE');
        types.set(m[2], m[3]);
      } else {
        help.set(m[2], m[3] ?? '');
      }
      continue;
    }
    const nameMatch = line.match(/^[a-zA-Z_:][a-zA-Z0-9_:]*/);
    if (!nameMatch) fail('no metric name');
    const name = nameMatch[0];
    let i = name.length;
    const labels = {};
    if (line[i] === '{') {
      i++;
      for (;;) {
        while (line[i] === ' ') i++;
        if (line[i] === '}') {
          i++;
          break;
        }
        const key = line.slice(i).match(/^[a-zA-Z_][a-zA-Z0-9_]*/);
        if (!key) fail('bad label name');
        i += key[0].length;
        if (line[i] !== '=' || line[i + 1] !== '"') fail('expected ="');
        i += 2;
        let value = '';
        for (;;) {
          const c = line[i];
          if (c === undefined) fail('unterminated label value');
          if (c === '"') {
            i++;
            break;
          }
          if (c === '\\') {
            const e = line[i + 1];
            if (e === 'n') value += '\n';
            else if (e === '\\' || e === '"') value += e;
            else fail(`bad escape \\${e}`);
            i += 2;
          } else {
            value += c;
            i++;
          }
        }
        if (key[0] in labels) fail(`label ${key[0]} twice`);
        labels[key[0]] = value;
        if (line[i] === ',') i++;
        else if (line[i] !== '}') fail('expected , or }');
      }
    }
    const rest = line.slice(i).trim().split(/\s+/);
    if (rest.length < 1 || rest.length > 2 || rest[0] === '') fail('expected a value and an optional timestamp');
    const value = parseValue(rest[0]);
    if (value === undefined) fail('bad value');
    samples.push({ name, labels, value });
  }
  return { samples, types, help };
}

function parseValue(text) {
  if (text === 'NaN') return NaN;
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) return undefined;
  return Number(text);
}

/** The samples named `name` whose labels include every pair of `labels`. */
export function select(parsed, name, labels = {}) {
  return parsed.samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
}

/** The value of the one sample named `name` with exactly these labels; 0 when there is none. */
export function valueOf(parsed, name, labels) {
  const keys = Object.keys(labels).sort().join(',');
  const hits = select(parsed, name, labels).filter((s) => Object.keys(s.labels).sort().join(',') === keys);
  if (hits.length > 1) throw new Error(`${name}${JSON.stringify(labels)} appears ${hits.length} times`);
  return hits.length === 1 ? hits[0].value : 0;
}
