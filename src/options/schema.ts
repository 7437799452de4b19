/**
 * Command schemas: each `lonas` command declares its options once — flag, help text and a zod type that holds
 * the validation and the default. From that one declaration come
 *   - the typed options of the command's library function (`OptionsOf<typeof spec>`),
 *   - the commander options (src/cli/command.ts: flags, help, defaults, errors naming the flag),
 *   - the recipe section of the pipeline (`recipeSection`: the same fields and defaults, camelCase keys),
 *   - the argv the pipeline spawns (`toArgv`), and the parsing of argv back to typed options (`fromArgv`).
 * No package derives commander options from zod (zod-opts is its own parser, trpc-cli needs a tRPC router),
 * so this small derivation is lonas's own. This module does not depend on commander.
 */
import { z } from 'zod';

/**
 * One option. `flags` in commander syntax: '--rank <r>', '--sandwich', '--no-train-on-inputs', '--reorder-channels [score]';
 * for the positional argument its name: '<recipe>'.
 */
export interface OptionDef<T extends z.ZodTypeAny = z.ZodTypeAny> {
  flags: string;
  help: string;
  type: T;
  /** the value of a bare flag whose value is optional ('[score]') */
  preset?: string;
}

export interface CommandSpec<O extends Record<string, OptionDef> = Record<string, OptionDef>> {
  name: string;
  description: string;
  options: O;
  /** the option given as the one positional argument (`lonas run RECIPE`) instead of a flag */
  positional?: string;
  /** every option's type in one object: parses a whole options record (defaults applied) */
  schema: z.ZodObject<{ [K in keyof O]: O[K]['type'] }>;
}

/** The validated options of a command (defaults filled in). */
export type OptionsOf<S extends CommandSpec> = z.output<S['schema']>;
/** What a caller must give: required options, the rest optional (their defaults apply). */
export type OptionsInput<S extends CommandSpec> = z.input<S['schema']>;

export function option<T extends z.ZodTypeAny>(flags: string, help: string, type: T, extra: { preset?: string } = {}): OptionDef<T> {
  return { flags, help, type, ...extra };
}

export function defineCommand<O extends Record<string, OptionDef>>(
  name: string,
  description: string,
  options: O,
  positional?: keyof O & string,
): CommandSpec<O> {
  const shape = Object.fromEntries(Object.entries(options).map(([k, o]) => [k, o.type])) as { [K in keyof O]: O[K]['type'] };
  return { name, description, options, positional, schema: z.object(shape).strict() };
}

// ---------------------------------------------------------------------------------------------
// Value types whose messages read after the flag or field name ("--rank must be an integer ≥ 1")

export const int = (min = 0) => {
  const msg = `must be an integer ≥ ${min}`;
  return z.number({ invalid_type_error: msg }).int(msg).min(min, msg);
};

export const float = (check: (n: number) => boolean, range: string) => {
  const msg = `must be ${range}`;
  return z.number({ invalid_type_error: msg }).finite(msg).refine(check, msg);
};

/** a comma-separated list on the command line, a JSON array in a recipe */
export const list = <T extends z.ZodTypeAny>(item: T) => z.array(item).min(1, 'must name at least one');

// ---------------------------------------------------------------------------------------------
// What a flag looks like

export interface FlagInfo {
  /** '--rank' */
  long: string;
  /** takes no value: a switch ('--sandwich') or its negation ('--no-train-on-inputs') */
  isSwitch: boolean;
  negated: boolean;
  required: boolean;
  defaultValue: unknown;
  choices: readonly string[] | null;
  kind: 'number' | 'list' | 'text' | 'boolean';
}

/** The type under .default()/.optional()/.nullable()/refinements. */
function baseType(t: z.ZodTypeAny): z.ZodTypeAny {
  for (;;) {
    if (t instanceof z.ZodDefault) t = t._def.innerType;
    else if (t instanceof z.ZodOptional || t instanceof z.ZodNullable) t = t.unwrap();
    else if (t instanceof z.ZodEffects) t = t.innerType();
    else return t;
  }
}

export function flagInfo(def: OptionDef): FlagInfo {
  const long = def.flags.split(/[ ,]+/).find((f) => f.startsWith('--'))!;
  const isSwitch = !/[<[]/.test(def.flags);
  const base = baseType(def.type);
  const defaultValue = def.type instanceof z.ZodDefault ? def.type._def.defaultValue() : undefined;
  return {
    long,
    isSwitch,
    negated: long.startsWith('--no-'),
    required: !def.type.isOptional() && defaultValue === undefined,
    defaultValue,
    choices: base instanceof z.ZodEnum ? (base.options as string[]) : null,
    kind: base instanceof z.ZodNumber ? 'number' : base instanceof z.ZodArray ? 'list' : base instanceof z.ZodBoolean ? 'boolean' : 'text',
  };
}

/** Command-line text → a validated value; the error names the flag: `--rank must be an integer ≥ 1, got "x"`. */
export function parseFlagValue(def: OptionDef, text: string): unknown {
  const info = flagInfo(def);
  const raw =
    info.kind === 'number'
      ? text.trim() === ''
        ? NaN
        : Number(text)
      : info.kind === 'list'
        ? text
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean)
        : text;
  const r = def.type.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const message = info.choices
    ? `must be one of ${info.choices.join(', ')}`
    : Array.isArray(raw) && issue.path.length
      ? `item "${raw[Number(issue.path[0])]}" ${issue.message}`
      : issue.message;
  throw new Error(`${info.long} ${message}, got "${text}"`);
}

/** Validates a whole options record; errors name the flags. */
export function parseOptions<S extends CommandSpec>(spec: S, values: Record<string, unknown>): OptionsOf<S> {
  const r = spec.schema.safeParse(values);
  if (r.success) return r.data;
  const flagOf = (key: string) => (key in spec.options ? flagInfo(spec.options[key]).long : key);
  throw new Error(r.error.issues.map((i) => `${i.path.length ? flagOf(String(i.path[0])) : `lonas ${spec.name}`} ${i.message}`).join('; '));
}

const toText = (v: unknown) => (Array.isArray(v) ? v.join(',') : String(v));

/**
 * The argv that runs `spec` with `values`: [name, --flag value, …] in declaration order. Absent options and
 * values equal to the default are left out (the command applies the same default).
 */
export function toArgv<S extends CommandSpec>(spec: S, values: OptionsInput<S>): string[] {
  const argv = [spec.name];
  for (const [key, def] of Object.entries(spec.options)) {
    const v = (values as Record<string, unknown>)[key];
    if (key === spec.positional) {
      argv.push(toText(v));
      continue;
    }
    const info = flagInfo(def);
    if (v === undefined || v === null || JSON.stringify(v) === JSON.stringify(info.defaultValue)) continue;
    if (info.isSwitch) {
      if (v === !info.negated) argv.push(info.long);
    } else argv.push(info.long, toText(v));
  }
  return argv;
}

/** argv (flags only, as `toArgv` writes them) → validated values of the options it names; `source` names the origin in errors. */
export function fromArgv<S extends CommandSpec>(spec: S, argv: readonly string[], source: string): Partial<OptionsOf<S>> {
  const byFlag = new Map(
    Object.entries(spec.options)
      .filter(([key]) => key !== spec.positional)
      .map(([key, def]) => [flagInfo(def).long, { key, def }]),
  );
  const out: Record<string, unknown> = {};
  for (let i = 0; i < argv.length; i++) {
    const hit = byFlag.get(argv[i]);
    if (!hit)
      throw new Error(`${source}: "${argv[i]}" is not an option of lonas ${spec.name} (its options: ${[...byFlag.keys()].join(' ')})`);
    const info = flagInfo(hit.def);
    if (info.isSwitch) out[hit.key] = !info.negated;
    else if (hit.def.preset !== undefined && (i + 1 >= argv.length || argv[i + 1].startsWith('--')))
      out[hit.key] = parseFlagValue(hit.def, hit.def.preset);
    else {
      if (i + 1 >= argv.length) throw new Error(`${source}: ${argv[i]} needs a value`);
      try {
        out[hit.key] = parseFlagValue(hit.def, argv[++i]);
      } catch (e) {
        throw new Error(`${source}: ${(e as Error).message}`);
      }
    }
  }
  return out as Partial<OptionsOf<S>>;
}

/**
 * The recipe section of a command: its options minus those the pipeline fills in (paths, seed), with the
 * same types and defaults; unknown keys are refused. Errors read `field "finetune.rank": must be …`.
 */
export function recipeSection<O extends Record<string, OptionDef>, K extends keyof O & string>(
  spec: CommandSpec<O>,
  filledByPipeline: readonly K[],
): z.ZodObject<Omit<{ [P in keyof O]: O[P]['type'] }, K>, 'strict'> {
  const mask = Object.fromEntries(filledByPipeline.map((k) => [k, true]));
  // zod's omit() cannot check a mask built at run time against the generic shape; the declared return type says what it is
  return spec.schema.omit(mask as never).strict() as never;
}
