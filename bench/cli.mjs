// Command-line arguments of the bench scripts: `--name value`, `--name=value`, boolean flags,
// positionals; --help (or a missing required positional) prints the script's header comment.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

export function cliArgs(scriptUrl, { flags = [], positionalRequired = true } = {}) {
  const argv = process.argv.slice(2);
  const opts = { positional: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      opts.positional.push(a);
      continue;
    }
    const [k, inline] = a.slice(2).split(/=(.*)/s, 2);
    if (k === 'help' || flags.includes(k)) opts[k] = true;
    else opts[k] = inline ?? argv[++i];
  }
  if (opts.help || (positionalRequired && !opts.positional[0])) {
    const text = fs.readFileSync(fileURLToPath(scriptUrl), 'utf8').split('\n');
    const head = text.slice(1, text.findIndex((l) => l.startsWith('import')));
    console.error(head.map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
    process.exit(opts.help ? 0 : 2);
  }
  return opts;
}
