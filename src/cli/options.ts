/** Option parsers shared by commands: numbers are validated with messages that name the option. */
import { InvalidArgumentError } from 'commander';

export function intOption(name: string, min = 0): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}, got "${v}"`);
    return n;
  };
}

export function floatOption(name: string, check: (n: number) => boolean, range: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || !check(n)) throw new InvalidArgumentError(`${name} must be ${range}, got "${v}"`);
    return n;
  };
}
