# frozen_string_literal: true

# Comet at scale (a process full of held connections, fan-out in milliseconds): for N held
# long-poll subscribers of the Comet demo (examples/comet), in one run:
#   Thin 1.8 and Lunar --evented with plain async.callback (subscribers on an EM::Channel,
#   as Thin apps wrote it), Lunar with its native fan-out (Lunar::Topic, ?native=1), and two
#   floors: bare hyper with Lunar's settings (bench/crates/floor), and bare tokio writing one
#   fixed response to every socket (bench/crates/fanout-floor, the kernel's cost per write);
# measures time to open and hold N connections, server RSS per held connection, server CPU,
# then one publish: latency until each subscriber has the message (p50, p99, max), the
# server CPU for it, and the reactor thread's CPU per delivered message. The load comes from
# bench/crates/holdconns processes (each under the 20,000 open-file limit), from source
# addresses 127.0.0.2… Loopback only; bounded. Run through bench/run-scale. Appends to
# docs/benchmarks.md.
require "rbconfig"
require_relative "support"
require_relative "chart"
include BenchSupport # rubocop:disable Style/MixinUsage -- a script, not a library

APP = COMET_APP
SIZES = ENV.fetch("BENCH_SIZES", "10000,19500").split(",").map(&:to_i)

VARIANTS = {
  "Thin 1.8, async.callback" => [:thin, "0"],
  "Lunar, async.callback" => [:lunar, "0"],
  "Lunar, Lunar::Topic" => [:lunar, "1"],
  "bare hyper floor" => [:hyper_floor, "0"],
  "bare tokio fan-out floor" => [:fanout_floor, "0"],
}.freeze

# The thread that runs the app's fan-out (per-thread CPU): Thin is one thread.
REACTOR_THREAD = { thin: nil, lunar: "lunar-reactor" }.freeze

def now_us = (Time.now.to_r * 1_000_000).to_i

def server_command(kind, port)
  case kind
  when :thin then thin_command(port, APP, "-t", "0", "--max-conns", "20000")
  # --queue: N subscribers connect within a second or two, faster than Ruby takes them;
  # past the queue Lunar answers 503 at once (by design), Thin leaves them in the kernel.
  when :lunar then lunar_command(port, APP, "--evented", "--timeout", "0", "--queue", "20000")
  when :hyper_floor then [HYPER_FLOOR, port.to_s, "2"]
  when :fanout_floor then [FANOUT_FLOOR, port.to_s, "2"]
  end
end

def wait_until(seconds)
  deadline = Time.now + seconds
  sleep 0.05 until (done = yield) || Time.now > deadline
  done
end

# CPU seconds so far of the thread that runs the app's fan-out (nil: not measured).
def reactor_cpu(kind, pid)
  thread = REACTOR_THREAD.fetch(kind, :none)
  return if thread == :none

  thread ? thread_cpu_seconds(pid, thread) : cpu_seconds(pid)
end

# Opens `count` held polls, a tenth first and then the rest; returns the loaders and what
# opening them cost. RSS is read at idle, with the first tenth held, and with all held: the
# growth from the first tenth to all, over the polls added then, is the cost of one more
# poll, without what a server's first requests cost once (its heap growing, code paged in).
def hold_polls(pid, port, native, count)
  base_rss = rss_kib(pid)
  cpu_start = cpu_seconds(pid)
  first = [count / 10, 1].max
  loads, opened = open_polls(port, native, first)
  held_first = comet_stats(port)["polls"]
  first_rss = rss_kib(pid)
  more, opened_more = open_polls(port, native, count - first)
  loads += more
  held = comet_stats(port)["polls"] # subscribers the app holds, not just connections opened
  held_rss = rss_kib(pid)
  open_ms = [opened, opened_more].sum { |phase| phase.map(&:last).max || 0 } # one phase after the other
  opened += opened_more
  [loads, { held: held, failed: opened.sum { |o| o[1] }, open_s: open_ms / 1000.0,
            kib_per_conn: (held_rss - base_rss).fdiv([held, 1].max),
            kib_per_added: (held_rss - first_rss).fdiv([held - held_first, 1].max),
            rss_mib: held_rss / 1024.0, cpu_open: cpu_seconds(pid) - cpu_start }]
end

# Opens `count` more polls and waits until the app holds them beside those it held already.
def open_polls(port, native, count)
  return [[], []] if count <= 0

  already = comet_stats(port)["polls"]
  more = spawn_loaders(port, count, "/poll?after=0&native=#{native}", 60)
  opened = more.map { |io| io.gets.split }.map { |_, ok, failed, ms| [ok.to_i, failed.to_i, ms.to_i] }
  wait_until(30) { comet_stats(port)["polls"] >= already + opened.sum(&:first) }
  [more, opened]
end

# One publish to every held poll; returns its latencies and cost.
def publish_once(kind, pid, port, loads)
  cpu_before = cpu_seconds(pid)
  reactor_before = reactor_cpu(kind, pid)
  published_at = now_us
  Net::HTTP.post(URI("http://127.0.0.1:#{port}/publish"), "msg=fan-out")
  refused = 0
  times = loads.flat_map do |io|
    refused += io.gets.split[3].to_i # recv OK MISSING REFUSED
    io.gets.split.drop(1).map(&:to_i)
  end
  latencies = times.map { |t| (t - published_at) / 1000.0 }.sort
  reactor_used = reactor_before && (reactor_cpu(kind, pid) - reactor_before)
  { latencies: latencies, received: latencies.size, refused: refused, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99),
    max: latencies.last || Float::NAN, cpu_fanout: cpu_seconds(pid) - cpu_before,
    reactor_us: reactor_used && (reactor_used / [latencies.size, 1].max * 1e6) }
end

def measure(kind, native, count)
  port = free_port
  with_server(server_command(kind, port), port, env: LIB_ENV, chdir: ROOT) do |pid|
    loads, held = hold_polls(pid, port, native, count)
    held.merge(publish_once(kind, pid, port, loads))
  ensure
    kill_loaders(loads)
  end
end

rows = []
SIZES.each do |n|
  VARIANTS.each do |name, (kind, native)|
    r = measure(kind, native, n)
    rows << [name, n, r]
    warn format("%-26s N=%-6d held %-6d failed %-4d open %.1fs  %.2f KiB/conn (%.2f per added)  fan-out p50 %.1f p99 %.1f max %.1f ms " \
                "(%d got it, %d refused)  CPU fan-out %.2fs  reactor %s us/msg", name, n, r[:held], r[:failed], r[:open_s], r[:kib_per_conn], r[:kib_per_added],
                r[:p50], r[:p99], r[:max], r[:received], r[:refused], r[:cpu_fanout],
                r[:reactor_us] ? format("%.1f", r[:reactor_us]) : "-")
  end
end

table = rows.map do |name, n, r|
  format("| %s | %d | %d | %.1f s | %.2f KiB | %.2f KiB | %.0f MiB | %.2f s | %.1f ms | %.1f ms | %.1f ms | %d | %.2f s | %s |",
         name, n, r[:held], r[:open_s], r[:kib_per_conn], r[:kib_per_added], r[:rss_mib], r[:cpu_open], r[:p50], r[:p99], r[:max], r[:received], r[:cpu_fanout],
         r[:reactor_us] ? format("%.1f µs", r[:reactor_us]) : "–")
end
# Issue #19's two rows from this run: fan-out p99 against the bare tokio floor, memory per
# held poll against the bare hyper floor (≤ 1.5× and ≤ 1.10×).
by_size = SIZES.to_h { |n| [n, rows.select { |_, size, _| size == n }.to_h { |name, _, r| [name, r] }] }
against = SIZES.flat_map do |n|
  at = by_size[n]
  tokio = at.fetch("bare tokio fan-out floor")
  hyper = at.fetch("bare hyper floor")
  ["Lunar, async.callback", "Lunar, Lunar::Topic"].map do |name|
    r = at.fetch(name)
    format("| %s | %d | %.2f× | %.2f× | %.2f× |", name, n, r[:p99] / tokio[:p99], r[:kib_per_conn] / hyper[:kib_per_conn],
           r[:kib_per_added] / hyper[:kib_per_added])
  end
end
charts = SIZES.map do |n|
  series = by_size[n].map { |name, r| [name, r[:latencies]] }
  BenchChart.cdf("scale-fanout-#{n}", title: "One publish to #{n} held long-polls: share of subscribers with the message (left is better)",
                                      series: series, unit: "ms since POST /publish")
  "![fan-out to #{n}](charts/scale-fanout-#{n}.svg)"
end

report = <<~MD

  ## Comet at scale: held long-polls and one publish (same run)

  Measured by `bench/run-scale` on #{Time.now.utc.strftime('%Y-%m-%d')}, #{Etc.nprocessors} cores, open files
  limited to 20,000 per process. App: the Comet demo (`examples/comet/config.ru`); each
  subscriber holds `GET /poll?after=0`, subscribed to an `EM::Channel` and answered by
  `async.callback` (`&native=1`: held by a `Lunar::Topic`). Thin runs `-t 0 --max-conns
  20000`, Lunar `--evented --timeout 0 --queue 20000`. The floors: bare hyper with Lunar's
  settings and allocator, holding each request until the publish (`bench/crates/floor`);
  bare tokio writing one fixed response to every held socket (`bench/crates/fanout-floor`).
  "held" is the server's own subscriber count (`/stats`). Reactor CPU per message: the
  EventMachine thread's CPU during the publish divided by the messages delivered (Thin: its
  one thread). RSS per held connection is the server's RSS growth from idle to holding them
  all, divided by the subscribers held; per added connection, its growth from holding a
  tenth of them to holding all, divided by the subscribers added then (what one more costs,
  without what the first requests cost once). Only 200 answers count as delivered. Fan-out latency
  runs from just before `POST /publish` until each subscriber's first response byte.

  | server | N asked | held | time to open | RSS per held connection | RSS per added connection | server RSS | server CPU to open | fan-out p50 | p99 | max | got the message | server CPU for the publish | reactor CPU per message |
  | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
  #{table.join("\n")}

  #{charts.join("\n\n")}

  Against issue #19's goals (fan-out p99 ≤ 1.5× the tokio floor's; RSS per held poll ≤ 1.10×
  the hyper floor's):

  | server | N | fan-out p99 / tokio floor | RSS per held / hyper floor | RSS per added / hyper floor |
  | --- | ---: | ---: | ---: | ---: |
  #{against.join("\n")}
MD
File.write(File.join(ROOT, "docs/benchmarks.md"), report, mode: "a")
puts report
