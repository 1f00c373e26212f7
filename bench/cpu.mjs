// CPU accounting from /proc, as run.sh does it: utime+stime of the server and its mariadbd
// (pids from a data dir's server.pid and mariadb/mariadbd.pid), the client (this process),
// and "other" = the machine's busy ticks less those. 100 % = one core.
import fs from 'node:fs';
import path from 'node:path';
import { execSync } from 'node:child_process';

const hz = (() => {
  try {
    return Number(execSync('getconf CLK_TCK').toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

function procTicks(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(') ') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return null;
  }
}

function sysTicks() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return f[0] + f[1] + f[2] + f[5] + f[6] + f[7]; // user nice system irq softirq steal
}

function readPid(file) {
  try {
    return Number(fs.readFileSync(file, 'utf8').trim()) || null;
  } catch {
    return null;
  }
}

/** mark() takes a reading; since(m) gives { 'kasama-server', mariadbd, client, other } in %. */
export function cpuMeter(dataDir) {
  const pids = {};
  if (dataDir) {
    const s = readPid(path.join(dataDir, 'server.pid'));
    const m = readPid(path.join(dataDir, 'mariadb', 'mariadbd.pid'));
    if (s) pids['kasama-server'] = s;
    if (m) pids.mariadbd = m;
  }
  function mark() {
    const u = process.cpuUsage();
    return {
      t: process.hrtime.bigint(),
      procs: Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, procTicks(pid)])),
      client: ((u.user + u.system) / 1e6) * hz,
      sys: sysTicks(),
    };
  }
  function since(m0) {
    const m1 = mark();
    const wall = Number(m1.t - m0.t) / 1e9;
    const pct = (ticks) => Math.round((ticks / hz / wall) * 100);
    const out = {};
    let ours = 0;
    for (const k of Object.keys(pids)) {
      const d = (m1.procs[k] ?? 0) - (m0.procs[k] ?? 0);
      ours += d;
      out[k] = pct(d);
    }
    const dc = m1.client - m0.client;
    ours += dc;
    out.client = pct(dc);
    out.other = pct(Math.max(0, m1.sys - m0.sys - ours));
    return out;
  }
  return { mark, since, pids };
}
