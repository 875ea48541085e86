import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { RedisServerProcess, waitFor } from '@app/runtime';
import { signToken } from '../test/support/tokens';
import { sleep } from '../bench/common';
import { type LoadConfig, offeredDeliveries, parseConfig, type SideKey } from './config';
import { DRILLS } from './drills';
import { publishOnly } from './publish-only';
import { connectCpu, errorCount, errorsByKind, idleCpu, markdown, phase, type SideResult } from './report';
import { LoadSystem, streamNames } from './system';

/**
 * `npm run load`: many sockets over several pods and client processes, steady publishing,
 * churn and fault drills, on loopback; the full path and the naive baseline (socket.io +
 * sharded redis adapter) each alone on the machine in turn, with the same parameters.
 * Writes bench/results/load-<date>[-<preset>].md and prints it. See load/README.md.
 *
 * Phases per side: start (Redis, pods one by one, publishers, clients) → connect every
 * socket (connect rate, then idle RSS per socket) → publish + churn, warm-up → steady
 * phase (throughput, latency, CPU, loss) → publish-only phase (churn off, a burst of
 * events: Redis CPU per published event; publish-only.ts) → each drill in turn, load and
 * churn on (drills.ts) → stop publishing → every subscription must reach its stream's last
 * seq → tear down.
 */

const startedAt = Date.now();
function log(line: string): void {
  console.log(`[${((Date.now() - startedAt) / 1000).toFixed(1).padStart(6)} s] ${line}`);
}

let current: LoadSystem | null = null;

async function shutdown(code: number): Promise<never> {
  const sys = current;
  current = null;
  await sys?.teardown().catch(() => undefined);
  process.exit(code);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping the load run`);
    void shutdown(130);
  });
}

/** The pods' backplane repairs (`rtgw_backplane_path_repairs_total`, `…_feed_stalls_total`) summed over the pods alive now. */
async function backplaneSelfRepairs(sys: LoadSystem): Promise<number> {
  let total = 0;
  for (const pod of sys.pods.filter((p) => p.alive)) {
    // A pod that does not answer adds nothing (the row says "on the pods running at the end").
    const text = await fetch(`${pod.url}/metrics`)
      .then((r) => r.text())
      .catch(() => '');
    for (const line of text.split('\n')) {
      if (/^rtgw_backplane_(path_repairs|feed_stalls)_total\b/.test(line)) total += Number(line.split(' ').at(-1));
    }
  }
  return total;
}

async function runSide(side: SideKey, cfg: LoadConfig, tokens: string[]): Promise<SideResult> {
  const sideStarted = Date.now();
  const sys = await LoadSystem.start(side, cfg, tokens, log);
  current = sys;
  try {
    // Connect: every socket connects and subscribes (joins) while the streams are quiet.
    await sleep(1_000);
    const rssBefore = sys.podRssKb();
    const pre = await sys.snapshot();
    const connectStarted = Date.now();
    const connectTimeoutMs = 120_000 + cfg.sockets * 20;
    await sys.eachClient('connect', {}, connectTimeoutMs);
    const connectMs = Date.now() - connectStarted;
    const connected = await sys.snapshot();
    // Idle: every socket connected, nothing published; RSS settles, idle CPU is measured.
    await sleep(1_000);
    const idleFrom = await sys.snapshot();
    await sleep(4_000);
    const idle = await sys.snapshot();
    const idleCost = idleCpu(idleFrom, idle);
    const idleRssPerSocketKb = (sys.podRssKb() - rssBefore) / Math.max(1, idle.clients.ready);
    log(
      `${side}: ${idle.clients.ready} of ${cfg.sockets} sockets subscribed in ${(connectMs / 1000).toFixed(1)} s ` +
        `(${Math.round(idle.clients.ready / (connectMs / 1000))}/s; per pod ${idle.clients.perPod.join(' / ')}); ` +
        `pod RSS +${(idleRssPerSocketKb || 0).toFixed(1)} KB/socket; client RSS ${Math.round(idle.clients.rssKb / 1024)} MB`,
    );
    if (idle.clients.ready < cfg.sockets)
      throw new Error(`${side}: only ${idle.clients.ready} of ${cfg.sockets} sockets connected (errors ${JSON.stringify(errorsByKind(idle))})`);

    // Load: publishers and churn on; warm up, then the measured steady phase.
    await sys.startPublishing(cfg);
    await sys.eachClient('churn', { perSecond: cfg.churn / cfg.clients });
    log(`${side}: publishing (${Math.round(offeredDeliveries(cfg))} deliveries/s offered), churn ${cfg.churn}/s; warm-up ${cfg.warmup} s`);
    await sleep(cfg.warmup * 1000);
    await sys.histogram(true);
    const a = await sys.snapshot();
    await progress(sys, cfg.duration * 1000, side);
    const b = await sys.snapshot();
    const steady = phase(a, b, await sys.histogram(true), idleCost);
    log(
      `${side}: steady ${Math.round(steady.deliveriesPerSec)} deliveries/s, p50 ${steady.p50.toFixed(2)} p99 ${steady.p99.toFixed(2)} p99.9 ${steady.p999.toFixed(2)} ms, ` +
        `server ${steady.serverCpuPerDelivery.toFixed(2)} CPU-µs/delivery, redis ${steady.redisCpuPerEvent.toFixed(1)} µs/event, lost ${steady.lost}, dup ${steady.dup}, errors ${steady.errors}`,
    );

    // Publish-only: churn off, a burst of events; Redis CPU per published event.
    await sys.eachClient('churn', { perSecond: 0 });
    const publishOnlyResult = await publishOnly(sys, cfg, idleCost, log);
    await sys.eachClient('churn', { perSecond: cfg.churn / cfg.clients });

    // Drills, load and churn still on.
    const drills: SideResult['drills'] = [];
    const expected: Record<string, number> = {};
    for (const name of cfg.drills) {
      const result = await DRILLS[name].run({ sys, cfg, log });
      const window = phase(result.before, result.after, result.latency, idleCost);
      for (const [kind, n] of Object.entries(result.expected ?? {})) {
        expected[kind] = (expected[kind] ?? 0) + n;
        window.errors -= n;
      }
      drills.push({ result, phase: window });
      log(`${side}: ${name}: lost ${result.lost}, dup ${result.dup}, errors ${window.errors}${result.notes.length ? `; ${result.notes.join('; ')}` : ''}`);
    }

    // Stop, then every subscription must reach its stream's last published seq.
    await sys.eachClient('churn', { perSecond: 0 });
    const stop = await sys.stopPublishing(streamNames(cfg).length);
    let verify = await sys.eachClient<SideResult['verify']>('verify', { finals: stop.finals });
    for (let tries = 0; tries < 60 && verify.some((v) => v.behind > 0 || v.notReady > 0); tries++) {
      await sleep(500);
      verify = await sys.eachClient<SideResult['verify']>('verify', { finals: stop.finals });
    }
    const end = await sys.snapshot();
    const selfRepairs = side === 'full' ? await backplaneSelfRepairs(sys) : Number.NaN;
    const sum = (key: keyof SideResult['verify']) => verify.reduce((total, v) => total + v[key], 0);
    // Errors a drill causes by design (epoch changes and failed publishes across a Redis restart) are not errors.
    const errors = errorsByKind(end);
    for (const [kind, n] of Object.entries(expected)) if (kind in errors) errors[kind] -= n;
    const errorTotal = Object.values(errors).reduce((a, b) => a + b, 0);
    const result: SideResult = {
      side,
      round: 0,
      connected: idle.clients.ready,
      connectPerSec: idle.clients.ready / (connectMs / 1000),
      connectCpu: connectCpu(pre, connected),
      idleRssPerSocketKb,
      idle: idleCost,
      clientRssPerSocketKb: (idle.clients.rssKb - pre.clients.rssKb) / Math.max(1, idle.clients.ready),
      steady,
      publishOnly: publishOnlyResult,
      drills,
      verify: {
        checked: sum('checked'),
        behind: sum('behind'),
        missing: sum('missing'),
        ahead: sum('ahead'),
        unknown: sum('unknown'),
        notReady: sum('notReady'),
      },
      published: stop.sent,
      errors,
      lostTotal: end.clients.lost,
      dupTotal: end.clients.dup,
      selfRepairs,
      seconds: (Date.now() - sideStarted) / 1000,
    };
    log(
      `${side}: published ${stop.sent} events (${stop.errors} errors${stop.httpRetries ? `, ${stop.httpRetries} HTTP retries` : ''}); ` +
        `end check: ${result.verify.checked - result.verify.behind - result.verify.ahead} of ${result.verify.checked} subscriptions at their last seq, ` +
        `${result.verify.missing} events missing; lost ${end.clients.lost}, dup ${end.clients.dup}, errors ${errorTotal}` +
        (errorCount(end) !== errorTotal ? ` (not counted, caused by the drills by design: ${JSON.stringify(expected)})` : ''),
    );
    return result;
  } finally {
    current = null;
    await sys.teardown();
  }
}

/** Waits out a phase, logging a line every 10 s. */
async function progress(sys: LoadSystem, ms: number, side: SideKey): Promise<void> {
  const until = Date.now() + ms;
  let last = await sys.snapshot();
  while (Date.now() < until) {
    await sleep(Math.min(10_000, until - Date.now()));
    const now = await sys.snapshot();
    const secs = (now.atUs - last.atUs) / 1e6;
    log(
      `${side}:   ${Math.round((now.clients.received - last.clients.received) / secs)} deliveries/s, ready ${now.clients.ready}, ` +
        `lost ${now.clients.lost}, dup ${now.clients.dup}, errors ${errorCount(now)}, load ${loadavg()[0].toFixed(2)}`,
    );
    last = now;
  }
}

/** `--serve <s>`: the full path with its publishers and no clients, for Artillery or any outside client. */
async function serve(cfg: LoadConfig, tokens: string[]): Promise<void> {
  const sys = await LoadSystem.start('full', { ...cfg, clients: 0 }, tokens, log);
  current = sys;
  await sys.startPublishing(cfg);
  const streams = streamNames(cfg);
  console.log(
    [
      '',
      `gateway pods: ${sys.pods.map((p) => p.url).join(' ')}`,
      `streams: ${streams[0]} … ${streams[streams.length - 1]} (${cfg.rate} events/s each${cfg.hotEvery ? `, the hot one ${cfg.hotRate}/s` : ''})`,
      `export LOAD_TOKEN=${tokens[0]}`,
      `serving for ${cfg.serve} s (Ctrl-C stops it earlier)`,
      '',
    ].join('\n'),
  );
  await sleep(cfg.serve * 1000);
  const stop = await sys.stopPublishing(streams.length);
  log(`published ${stop.sent} events, ${stop.errors} errors`);
}

async function main(): Promise<void> {
  const cfg = parseConfig(process.argv.slice(2), process.env);
  const deadline = setTimeout(() => {
    console.error(`load: past the ${cfg.deadline} s deadline, stopping`);
    void shutdown(1);
  }, cfg.deadline * 1000);
  deadline.unref();
  for (const name of cfg.drills) if (!DRILLS[name]) throw new Error(`unknown drill ${name}; drills: ${Object.keys(DRILLS).join(', ')}`);
  const gatewayMain = join(__dirname, '..', 'dist', 'apps', 'gateway', 'main.js');
  await waitFor(() => existsSync(gatewayMain), { timeoutMs: 60_000, intervalMs: 500, message: `${gatewayMain} (run npm run build)` });
  if (!RedisServerProcess.isAvailable()) throw new Error('redis-server is not on PATH');
  const loadStart = loadavg();
  log(`config: ${JSON.stringify({ ...cfg, addrs: cfg.addrs.length })}; load average ${loadStart[0].toFixed(2)}; deadline ${cfg.deadline} s`);

  // Several users, every one allowed all bot streams: presence sees many dashboards per bot.
  const tokens = await Promise.all(
    Array.from({ length: 16 }, (_, i) => signToken({ sub: `load-user-${i}`, scope: ['bot:*'], expiresInSeconds: cfg.deadline + 3600 })),
  );
  if (cfg.serve) return serve(cfg, tokens);
  const results: SideResult[] = [];
  for (let round = 0; round < cfg.rounds; round++) {
    // ABBA: neither side always runs first (other jobs on the machine come and go).
    for (const side of round % 2 === 0 ? cfg.sides : [...cfg.sides].reverse()) {
      if (cfg.rounds > 1) log(`round ${round + 1} of ${cfg.rounds}: ${side}`);
      results.push({ ...(await runSide(side, cfg, tokens)), round });
    }
  }

  const date = execFileSync('date', ['+%F'], { encoding: 'utf8' }).trim();
  const commit = (() => {
    try {
      return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    } catch {
      return 'unknown';
    }
  })();
  const environment = [
    `- Load average at the start ${loadStart.map((l) => l.toFixed(2)).join(' / ')} (other jobs may share the machine; compare the columns of one report, not reports); commit ${commit}, gateway build ${statSync(gatewayMain).mtime.toISOString()}.`,
    `- Each side: a private redis-server (no persistence${cfg.drills.includes('redis-restart') ? ' until the redis-restart drill switches its append-only file on' : ''}); full path = gateway pods from dist/apps/gateway (TRANSPORTS=websocket, LOG_LEVEL=warn, drain 500 sockets per 100 ms); baseline = bench/baseline-server.ts pods (socket.io 4.8.3 + @socket.io/redis-adapter sharded, dynamic mode, no auth, no seq), transpiled and run on plain node as the gateway runs its build.`,
  ];
  const report = markdown(
    cfg,
    results,
    date,
    environment,
    cfg.drills.map((name) => `Drill ${name}: ${DRILLS[name].describe(cfg)}`),
  );
  const dir = join(__dirname, '..', 'bench', 'results');
  const file = resolve(dir, cfg.out || `load-${date}${cfg.preset === 'default' ? '' : `-${cfg.preset}`}.md`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, report);
  console.log(`\n${report}`);
  log(`report written to ${file}`);
  // A failed full path (anything lost, duplicated, an error, a subscription short at the end) fails the command.
  const failed = (r: SideResult) => r.lostTotal > 0 || r.dupTotal > 0 || Object.values(r.errors).some((v) => v > 0) || r.verify.behind > 0;
  if (results.some((r) => r.side === 'full' && failed(r))) process.exitCode = 2;
}

main()
  .catch((error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    process.exitCode = 1;
  })
  .finally(() => shutdown(Number(process.exitCode ?? 0)));
