# frozen_string_literal: true

# Cluster mode and Redis topics, same run (issue #11):
#   (a) BENCH_HELD (100,000) long-polls held by `lunar -w BENCH_WORKERS` (6: the open-file
#       limit is per process) on one Lunar::Topic shared through Redis
#       (bench/apps/redis_polls.ru), one `redis-cli PUBLISH`: time to open, RSS of the
#       whole cluster (master + workers) per held request, delivery p50/p99/max;
#   (b) hello world requests/s and server CPU per request (all processes of the server):
#       Lunar -w 1, Lunar -w 2, Puma 5 -w 2 -t 4:4 (bench/apps/bench.ru).
# Load: bench/crates/holdconns processes (from 127.0.0.2…) and wrk. Loopback only; a
# redis-server of its own on a free port. Run through bench/run-cluster. Appends to
# docs/benchmarks.md.
require_relative "support"
include BenchSupport # rubocop:disable Style/MixinUsage -- a script, not a library

HELD = Integer(ENV.fetch("BENCH_HELD", "100000"))
WORKERS = Integer(ENV.fetch("BENCH_WORKERS", "6"))
SECONDS = Integer(ENV.fetch("BENCH_SECONDS", "5"))
ROUNDS = Integer(ENV.fetch("BENCH_ROUNDS", "2"))
HELLO_APP = File.join(ROOT, "bench/apps/bench.ru")
POLL_APP = File.join(ROOT, "bench/apps/redis_polls.ru")

# Polls held by each worker, as their /stats say (each request may reach any worker).
def held_by_workers(port)
  seen = {}
  (WORKERS * 12).times do
    stats = JSON.parse(Net::HTTP.get(URI("http://127.0.0.1:#{port}/stats")))
    seen[stats["pid"]] = stats["polls"]
  end
  seen
end

# The delivery latencies (ms, sorted) of one `redis-cli PUBLISH bench-polls fan-out`, sent
# as redis-cli sends it on a connection opened beforehand (the time should not include
# starting a process), and how many Lunar processes were subscribed.
def publish_through_redis(redis_port, loads)
  redis = TCPSocket.new("127.0.0.1", redis_port)
  published_at = (Time.now.to_r * 1_000_000).to_i
  redis.write("*3\r\n$7\r\nPUBLISH\r\n$11\r\nbench-polls\r\n$7\r\nfan-out\r\n")
  subscribed = redis.gets.to_s[/\d+/].to_i
  redis.close
  times = loads.flat_map { |io| io.gets && io.gets.split.drop(1).map(&:to_i) }
  [times.map { |t| (t - published_at) / 1000.0 }.sort, subscribed]
end

# Opens HELD polls across the workers; returns the loaders, what each opened, and the
# polls each worker holds once they are all in.
def open_polls(port)
  loads = spawn_loaders(port, HELD, "/poll", 60)
  opened = loads.map { |io| io.gets.split.drop(1).map(&:to_i) }
  deadline = Time.now + 60
  sleep 0.5 until held_by_workers(port).values.sum >= opened.sum(&:first) || Time.now > deadline
  [loads, opened, held_by_workers(port)]
end

def held_polls
  loads = nil
  with_redis do |redis_port|
    port = free_port
    command = lunar_command(port, POLL_APP, "--evented", "-w", WORKERS.to_s, "--timeout", "0", "--queue", "20000")
    with_server(command, port, env: LIB_ENV.merge("REDIS_URL" => "redis://127.0.0.1:#{redis_port}/0"), chdir: ROOT) do |pid|
      sleep 0.2 until process_tree(pid).size > WORKERS # every worker up
      held_by_workers(port) # the topic joined in every worker before the load
      base = tree_rss_kib(pid)
      loads, opened, per_worker = open_polls(port)
      held_rss = tree_rss_kib(pid)
      latencies, subscribed = publish_through_redis(redis_port, loads)
      held = per_worker.values.sum
      { opened: opened.sum(&:first), open_s: opened.map(&:last).max / 1000.0, held: held,
        spread: per_worker.values.minmax, base_mib: base / 1024.0, held_mib: held_rss / 1024.0,
        kib: (held_rss - base).fdiv([held, 1].max), got: latencies.size,
        p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), max: latencies.last || Float::NAN,
        subscribed: subscribed }
    end
  end
ensure
  kill_loaders(loads)
end

HELLO = {
  "Lunar -w 1 (-t 4)" => ->(port) { lunar_command(port, HELLO_APP, "-w", "1", "-t", "4") },
  "Lunar -w 2 (-t 4)" => ->(port) { lunar_command(port, HELLO_APP, "-w", "2", "-t", "4") },
  "Puma 5 -w 2 -t 4:4" => ->(port) { puma_command(port, HELLO_APP, "-w", "2", "-t", "4:4") },
}.freeze

def wrk(port, seconds)
  out = IO.popen(["wrk", "-t1", "-c32", "-d#{seconds}s", "http://127.0.0.1:#{port}/"], &:read)
  out[/(\d+) requests in/, 1].to_i
end

def hello(name)
  port = free_port
  with_server(HELLO.fetch(name).call(port), port, env: LIB_ENV, chdir: ROOT) do |pid|
    sleep 0.2 until process_tree(pid).size > (name.include?("-w 2") ? 2 : 1)
    wrk(port, 1) # warm-up (and every worker booted)
    before = tree_cpu_seconds(pid)
    requests = wrk(port, SECONDS)
    [requests, tree_cpu_seconds(pid) - before]
  end
end

polls = held_polls
warn format("held %d of %d (per worker %d..%d), open %.1fs, cluster RSS %.0f → %.0f MiB (%.2f KiB each), p50 %.1f p99 %.1f max %.1f ms, got %d",
            polls[:held], HELD, *polls[:spread], polls[:open_s], polls[:base_mib], polls[:held_mib], polls[:kib],
            polls[:p50], polls[:p99], polls[:max], polls[:got])

totals = HELLO.keys.to_h { |name| [name, [0, 0.0]] }
ROUNDS.times do
  HELLO.each_key do |name|
    requests, cpu = hello(name)
    totals[name][0] += requests
    totals[name][1] += cpu
    warn format("%-20s %8.0f req/s  %6.1f µs CPU/req", name, requests.fdiv(SECONDS), cpu / [requests, 1].max * 1e6)
  end
end
puma_rps = totals.fetch("Puma 5 -w 2 -t 4:4")[0].fdiv(ROUNDS * SECONDS)
puma_cpu = totals.fetch("Puma 5 -w 2 -t 4:4").then { |r, c| c / [r, 1].max * 1e6 }

def hello_row(name, requests, cpu_seconds, puma_rps, puma_cpu)
  rps = requests.fdiv(ROUNDS * SECONDS)
  cpu = cpu_seconds / [requests, 1].max * 1e6
  format("| %s | %.0f | %.2f× | %.1f µs | %.2f× |", name, rps, rps / puma_rps, cpu, cpu / puma_cpu)
end

report = <<~MD

  ## Cluster mode and Redis topics (same run)

  Measured by `bench/run-cluster` on #{Time.now.utc.strftime('%Y-%m-%d')}, #{Etc.nprocessors} cores.

  ### #{HELD} long-polls across #{WORKERS} workers, one `redis-cli PUBLISH`

  `lunar --evented -w #{WORKERS}` serving `bench/apps/redis_polls.ru` (one `Lunar::Topic`
  shared through a local redis-server); the polls come from holdconns processes on
  127.0.0.2…; RSS is the whole cluster's (master and workers); delivery runs from just
  before the `PUBLISH` (sent as `redis-cli` sends it, on a connection opened beforehand)
  until each client has its answer; #{polls[:subscribed]} Lunar processes were subscribed.

  | held | per worker | time to open | cluster RSS before → held | RSS per held poll | delivery p50 | p99 | max | answered |
  | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
  | #{polls[:held]} of #{HELD} | #{polls[:spread].join('–')} | #{format('%.1f s', polls[:open_s])} | #{format('%.0f → %.0f MiB', polls[:base_mib], polls[:held_mib])} | #{format('%.2f KiB', polls[:kib])} | #{format('%.1f ms', polls[:p50])} | #{format('%.1f ms', polls[:p99])} | #{format('%.1f ms', polls[:max])} | #{polls[:got]} |

  ### Hello world, cluster mode (wrk -t1 -c32, #{ROUNDS} × #{SECONDS} s; CPU of every server process)

  | server | requests/s | vs Puma -w 2 | CPU per request | vs Puma -w 2 |
  | --- | ---: | ---: | ---: | ---: |
  #{totals.map { |name, (requests, cpu)| hello_row(name, requests, cpu, puma_rps, puma_cpu) }.join("\n")}
MD
File.write(File.join(ROOT, "docs/benchmarks.md"), report, mode: "a")
puts report
