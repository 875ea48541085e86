/**
 * Parameters of `npm run load`: flags (`--sockets 50000` or `--sockets=50000`), else
 * environment (`LOAD_SOCKETS=50000`), else the preset's value, else the default scenario.
 */
export type SideKey = 'full' | 'baseline';

export interface LoadConfig {
  preset: string;
  /** Concurrent sockets per side. */
  sockets: number;
  /** Server pods per side; each holds at most ~18k sockets (20k open files per process). */
  pods: number;
  /** Client processes; each holds at most ~18k sockets. */
  clients: number;
  /** Plain streams ("bots"), each watched by sockets/streams sockets. */
  streams: number;
  /** Events/s published to each plain stream. */
  rate: number;
  /** Share of the sockets that also watch the one hot stream (0: no hot stream). */
  hotFraction: number;
  /** Events/s published to the hot stream. */
  hotRate: number;
  /** Seconds of the measured steady phase (after a warm-up). */
  duration: number;
  warmup: number;
  /** Sockets closed and replaced by fresh ones per second, during load. */
  churn: number;
  /** Fault drills run during load, after the steady phase (see drills.ts). */
  drills: string[];
  /** Jitter drill: each connection is reset at a random age of 0.8–1.2 × this, seconds. */
  jitterPeriod: number;
  /** Jitter drill: how long connections are reset, seconds. */
  jitterFor: number;
  /** Jitter drill: how long a client stays away after its connection was reset, ms (±25 %). */
  jitterOffline: number;
  /** Network-drops drill: how many drops, and how long each, ms. */
  drops: number;
  dropMs: number;
  /** Publish-only phase: events/s published in all over `burstStreams` extra streams for `burstFor` s (0: no such phase). */
  burstRate: number;
  burstStreams: number;
  burstFor: number;
  /** Sockets/s moved onto the TCP proxies before the first network drill (0: from the socket count). */
  migrateRate: number;
  sides: SideKey[];
  /** Rounds of all sides, in ABBA order; the report shows medians (sums for losses and errors). */
  rounds: number;
  /** Client implementation: raw Engine.IO frames over ws, or socket.io-client. */
  lib: 'raw' | 'sio';
  /** How the full path publishes: StreamPublisher, the HTTP API, or alternating. */
  via: 'direct' | 'http' | 'both';
  publishers: number;
  /** Bytes of padding in each event's payload. */
  padBytes: number;
  /** Connections being opened at once, per client process. */
  concurrency: number;
  reconnectJitterMs: number;
  /** Source addresses (127.0.0.x) the client sockets bind to, round robin. */
  addrs: string[];
  /** Whole-run deadline, seconds (everything is killed past it). */
  deadline: number;
  /** Report file name under bench/results (default load-<date>[-<preset>].md). */
  out: string;
  /** Serve mode, seconds: only Redis, the gateway pods and the publishers, for outside clients (Artillery). */
  serve: number;
  /** Derived: global socket g watches the hot stream when g % hotEvery === 0 (0: none). */
  hotEvery: number;
}

/** The per-process socket ceiling: 20,000 open files, minus room for everything else. */
export const MAX_PER_PROCESS = 18_000;
/** Ephemeral ports per source address are 32768–60999; keep a margin for TIME_WAIT. */
const MAX_PER_ADDRESS = 24_000;
/** The default spread: sockets per source address (see addrCount). */
const SOCKETS_PER_ADDRESS = 1_000;

const DEFAULTS = {
  sockets: 50_000,
  pods: 4,
  clients: 4,
  streams: 50,
  rate: 0.5,
  hotFraction: 0.2,
  hotRate: 1,
  duration: 60,
  warmup: 5,
  churn: 20,
  drills: 'pod-kill,rolling-restart,jitter,network-drops,redis-restart',
  jitterPeriod: 15,
  jitterFor: 60,
  jitterOffline: 2000,
  drops: 3,
  dropMs: 2000,
  burstRate: 2000,
  burstStreams: 50,
  burstFor: 10,
  migrateRate: 0,
  sides: 'full,baseline',
  rounds: 1,
  lib: 'raw',
  via: 'direct',
  publishers: 1,
  padBytes: 200,
  concurrency: 100,
  reconnectJitterMs: 1000,
  addrs: 0,
  deadline: 0,
  out: '',
  serve: 0,
};
type Raw = { [K in keyof typeof DEFAULTS]: string | number };

export const PRESETS: Record<string, Partial<Raw>> = {
  /** Development: ~2k sockets, well under a minute of steady load per side, then the pod kill. */
  small: {
    sockets: 2000,
    pods: 3,
    clients: 2,
    streams: 10,
    rate: 2,
    hotFraction: 0.25,
    hotRate: 2,
    duration: 30,
    warmup: 3,
    churn: 5,
    drills: 'pod-kill',
    jitterPeriod: 5,
    jitterFor: 20,
    drops: 3,
    burstRate: 2000,
    burstStreams: 20,
  },
  /** The issue's latency check: 1k subscribers of one stream over two pods, p99 vs baseline. */
  latency1k: {
    sockets: 1000,
    pods: 2,
    clients: 2,
    streams: 1,
    rate: 20,
    hotFraction: 0,
    duration: 30,
    warmup: 5,
    churn: 0,
    drills: 'none',
    rounds: 3,
    burstRate: 0,
  },
};

export function parseConfig(argv: string[], env: NodeJS.ProcessEnv): LoadConfig {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const match = /^--([a-zA-Z-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!match) throw new Error(`unexpected argument ${argv[i]} (flags look like --sockets 2000)`);
    const key = match[1].replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    flags.set(key, match[2] ?? argv[++i] ?? '');
  }
  const preset = flags.get('preset') ?? env.LOAD_PRESET ?? '';
  if (preset && !PRESETS[preset]) throw new Error(`unknown preset ${preset}; presets: ${Object.keys(PRESETS).join(', ')}`);
  for (const key of flags.keys()) if (key !== 'preset' && !(key in DEFAULTS)) throw new Error(`unknown flag --${key}`);
  const pick = (key: keyof typeof DEFAULTS): string => {
    const envKey = `LOAD_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
    return String(flags.get(key) ?? env[envKey] ?? PRESETS[preset]?.[key] ?? DEFAULTS[key]);
  };
  const num = (key: keyof typeof DEFAULTS, min: number, integer = true): number => {
    const value = Number(pick(key));
    if (!Number.isFinite(value) || value < min || (integer && !Number.isInteger(value)))
      throw new Error(`--${key} must be a number ≥ ${min}, not ${pick(key)}`);
    return value;
  };
  const oneOf = <T extends string>(key: keyof typeof DEFAULTS, allowed: readonly T[]): T => {
    const value = pick(key) as T;
    if (!allowed.includes(value)) throw new Error(`--${key} must be one of ${allowed.join(', ')}`);
    return value;
  };

  const sockets = num('sockets', 1);
  const hotFraction = num('hotFraction', 0, false);
  const drills = pick('drills')
    .split(',')
    .filter((d) => d && d !== 'none');
  const sides = pick('sides').split(',') as SideKey[];
  if (sides.length === 0 || sides.some((s) => s !== 'full' && s !== 'baseline')) throw new Error('--sides is full, baseline or full,baseline');
  const clients = num('clients', 1);
  const pods = num('pods', 1);
  // Few sockets per address: bind() before connect() searches the address's ports linearly,
  // and with ~8k of them taken (TIME_WAIT included) each connect costs the client ~1 ms of kernel CPU.
  const addrCount = num('addrs', 0) || Math.min(200, Math.max(2, Math.ceil(sockets / SOCKETS_PER_ADDRESS)));
  const cfg: LoadConfig = {
    preset: preset || 'default',
    sockets,
    pods,
    clients,
    streams: num('streams', 1),
    rate: num('rate', 0.01, false),
    hotFraction,
    hotRate: num('hotRate', 0.01, false),
    duration: num('duration', 1),
    warmup: num('warmup', 0),
    churn: num('churn', 0, false),
    drills,
    jitterPeriod: num('jitterPeriod', 1, false),
    jitterFor: num('jitterFor', 1, false),
    jitterOffline: num('jitterOffline', 0),
    drops: num('drops', 1),
    dropMs: num('dropMs', 100),
    burstRate: num('burstRate', 0, false),
    burstStreams: num('burstStreams', 1),
    burstFor: num('burstFor', 1, false),
    migrateRate: num('migrateRate', 0, false) || Math.max(200, Math.round(sockets / 60)),
    sides,
    rounds: num('rounds', 1),
    lib: oneOf('lib', ['raw', 'sio'] as const),
    via: oneOf('via', ['direct', 'http', 'both'] as const),
    publishers: num('publishers', 1),
    padBytes: num('padBytes', 0),
    concurrency: num('concurrency', 1),
    reconnectJitterMs: num('reconnectJitterMs', 0),
    addrs: Array.from({ length: addrCount }, (_, i) => `127.0.0.${11 + i}`),
    deadline: num('deadline', 0),
    out: pick('out'),
    serve: num('serve', 0),
    hotEvery: hotFraction > 0 ? Math.max(1, Math.round(1 / hotFraction)) : 0,
  };
  if (!cfg.deadline) cfg.deadline = cfg.serve ? cfg.serve + 120 : Math.round(2 * cfg.rounds * sides.length * sideSeconds(cfg));
  if (!cfg.serve) check(cfg);
  return cfg;
}

/**
 * A guess at one side's run time, seconds, with sockets (re)connecting and subscribing at
 * ~300/s (a busy 2-core machine; a quiet one does up to ~1,000/s). The deadline is twice it.
 */
export function sideSeconds(cfg: LoadConfig): number {
  const moving = (sockets: number) => sockets / 300;
  const perPod = cfg.sockets / cfg.pods;
  const drill: Record<string, number> = {
    'pod-kill': 40 + moving(perPod),
    'rolling-restart': cfg.pods * (15 + moving(perPod)),
    jitter: cfg.jitterFor + 30 + moving(cfg.sockets / 3),
    'network-drops': cfg.drops * (cfg.dropMs / 1000 + 10 + moving(cfg.sockets)),
    'redis-restart': 40 + moving(cfg.sockets / 2),
  };
  const proxies = cfg.drills.includes('network-drops') ? 20 + cfg.sockets / cfg.migrateRate : 0;
  const publishOnly = cfg.burstRate > 0 ? cfg.burstFor + 15 : 0;
  const drills = cfg.drills.reduce((sum, d) => sum + (drill[d] ?? 60 + moving(cfg.sockets)), 0);
  return 60 + moving(cfg.sockets) + cfg.warmup + cfg.duration + publishOnly + proxies + drills;
}

/** TCP proxy processes per pod: each holds ≤ 8k client connections (two open files each), also with a pod down. */
export function proxiesPerPod(cfg: LoadConfig): number {
  return Math.max(1, Math.ceil(cfg.sockets / Math.max(1, cfg.pods - 1) / 8_000));
}

/** Refuses a layout the machine's limits cannot hold, and says what would. */
function check(cfg: LoadConfig): void {
  const perPod = Math.ceil(cfg.sockets / cfg.pods);
  const onePodDown = cfg.drills.some((d) => d === 'pod-kill' || d === 'rolling-restart');
  const podsNeeded = Math.ceil(cfg.sockets / MAX_PER_PROCESS) + (onePodDown ? 1 : 0);
  if (cfg.pods < podsNeeded)
    throw new Error(
      `${cfg.sockets} sockets need --pods ${podsNeeded} or more (≤ ${MAX_PER_PROCESS} sockets per pod${onePodDown ? ', also while one pod is down' : ''}; ${perPod} now)`,
    );
  if (onePodDown && cfg.pods < 2) throw new Error('the pod-kill and rolling-restart drills need --pods 2 or more');
  if (Math.ceil(cfg.sockets / cfg.clients) > MAX_PER_PROCESS)
    throw new Error(`${cfg.sockets} sockets need --clients ${Math.ceil(cfg.sockets / MAX_PER_PROCESS)} or more`);
  if (Math.ceil(cfg.sockets / cfg.addrs.length) > MAX_PER_ADDRESS)
    throw new Error(`${cfg.sockets} sockets need --addrs ${Math.ceil(cfg.sockets / MAX_PER_ADDRESS)} or more`);
  if (cfg.addrs.length > 200) throw new Error('--addrs is at most 200 (127.0.0.11–127.0.0.210)');
}

/** Deliveries per second the publish rates offer (each event × the sockets that watch it). */
export function offeredDeliveries(cfg: LoadConfig): number {
  const hotWatchers = cfg.hotEvery > 0 ? Math.ceil(cfg.sockets / cfg.hotEvery) : 0;
  return cfg.sockets * cfg.rate + hotWatchers * cfg.hotRate;
}
