/**
 * A commander Command from a command schema (src/options/schema.ts): one option per declared option, with
 * its help, default (shown in --help), choices and a parser whose errors name the flag; the action receives
 * the options validated by the schema (defaults applied), typed as the command's library function takes them.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { flagInfo, parseFlagValue, parseOptions } from '../options/schema.ts';
import type { CommandSpec, OptionsOf } from '../options/schema.ts';

export function commandFrom<S extends CommandSpec>(spec: S, action: (options: OptionsOf<S>) => void | Promise<void>): Command {
  const cmd = new Command(spec.name).description(spec.description);
  for (const [key, def] of Object.entries(spec.options)) {
    if (key === spec.positional) {
      cmd.argument(def.flags, def.help);
      continue;
    }
    const info = flagInfo(def);
    const opt = new Option(def.flags, def.help);
    // commander checks choices itself ("Allowed choices are …"); the schema validates every other value
    if (info.choices) opt.choices(info.choices);
    else if (!info.isSwitch) {
      opt.argParser((text: string) => {
        try {
          return parseFlagValue(def, text);
        } catch (e) {
          throw new InvalidArgumentError((e as Error).message);
        }
      });
    }
    if (def.preset !== undefined) opt.preset(def.preset);
    if (info.required) opt.makeOptionMandatory();
    // switches default to off (or on, for --no-x) by commander itself; their zod default says the same
    if (info.defaultValue !== undefined && !info.isSwitch)
      opt.default(info.defaultValue, Array.isArray(info.defaultValue) ? info.defaultValue.join(',') : undefined);
    cmd.addOption(opt);
  }
  // commander passes the positional argument (when declared) first, then the options
  return cmd.action((...args: unknown[]) => {
    const values = spec.positional
      ? { ...(args[1] as Record<string, unknown>), [spec.positional]: args[0] }
      : (args[0] as Record<string, unknown>);
    return action(parseOptions(spec, values));
  });
}
