// For the scripts in bench/ (measurements, not tests).

import { parseArgs } from 'node:util';

/**
 * The command line's `--name value` options, `defaults` being `{name: default}`: an option whose
 * default is a number comes back as `Number(value given)`, any other as the string given (its
 * default when not given; `undefined` for a default of `undefined`). An unknown option throws.
 */
export function benchOptions(defaults) {
  const options = {};
  for (const [name, value] of Object.entries(defaults)) {
    options[name] = value === undefined ? { type: 'string' } : { type: 'string', default: String(value) };
  }
  const { values } = parseArgs({ options });
  for (const [name, value] of Object.entries(defaults)) {
    if (typeof value === 'number') values[name] = Number(values[name]);
  }
  return values;
}
