# frozen_string_literal: true

# Issue #19's rows, one run, servers alternated within each round:
#   streams   one deferrable body of 1 GiB from the reactor (bench/apps/stream_1g.ru),
#             Lunar --evented vs Thin; one plain `each` body of 1 GiB
#             (bench/apps/each_1g.ru), Lunar threaded vs Puma 5 -t 4:4. curl reads as
#             fast as it can; MB/s and the server's CPU seconds per GiB.
#   seed      the seed app with a 10 ms timer (bench/apps/seed_10ms.ru), wrk -t2 -c200:
#             server CPU per request, Lunar --evented vs Thin.
#   hello     hello world (bench/apps/bench.ru), wrk -t1 -c64: server CPU per request,
#             Lunar -t 4, Lunar inline (--io-threads 0 -t 1: the app's thread does the
#             I/O), Puma 5 -t 4:4 and the bare hyper floor (bench/crates/floor).
#   http/2    hello world on Lunar -t 4 through h2load, 64 requests in flight: over HTTP/1.1
#             (64 connections), and over h2c as 64 connections of one stream and as 8
#             connections of 8 streams (how HTTP/2 is meant to be used): the issue's
#             "HTTP/2 on a par with HTTP/1.1, keep it so", one client for both protocols.
# The held long-poll and the 10,000-poll fan-out rows are bench/run-scale's.
# Run through bench/run-perf. Replaces its section of docs/benchmarks.md; draws
# docs/charts/perf-streams.svg and docs/charts/perf-cpu.svg from the same numbers.
require "etc"
require_relative "support"
require_relative "chart"
include BenchSupport # rubocop:disable Style/MixinUsage -- a script, not a library

ROUNDS = Integer(ENV.fetch("BENCH_ROUNDS", "3"))
SECONDS = Integer(ENV.fetch("BENCH_SECONDS", "5"))
FLOOR = File.join(ROOT, "target/release/lunar-floor")
app = ->(name) { File.join(ROOT, "bench/apps/#{name}") }
evented = ->(port, path) { lunar_command(port, path, "--evented", "--timeout", "0") }
thin = ->(port, path) { thin_command(port, path, "-t", "0", "--max-conns", "20000") }

STREAMS = {
  "Lunar --evented, deferrable" => ->(port) { evented.call(port, app["stream_1g.ru"]) },
  "Thin 1.8, deferrable" => ->(port) { thin.call(port, app["stream_1g.ru"]) },
  "Lunar -t 4, each" => ->(port) { lunar_command(port, app["each_1g.ru"], "-t", "4") },
  "Puma 5 -t 4:4, each" => ->(port) { puma_command(port, app["each_1g.ru"], "-t", "4:4") },
}.freeze
SEED = {
  "Lunar --evented, seed app" => ->(port) { evented.call(port, app["seed_10ms.ru"]) },
  "Thin 1.8, seed app" => ->(port) { thin.call(port, app["seed_10ms.ru"]) },
}.freeze
HELLO = {
  "Lunar -t 4, hello world" => ->(port) { lunar_command(port, app["bench.ru"], "-t", "4") },
  "Lunar --io-threads 0 -t 1, hello world" => ->(port) { lunar_command(port, app["bench.ru"], "--io-threads", "0", "-t", "1") },
  "Puma 5 -t 4:4, hello world" => ->(port) { puma_command(port, app["bench.ru"], "-t", "4:4") },
  "hyper floor, hello world" => ->(port) { [FLOOR, port.to_s, "2"] },
}.freeze
H2LOAD = { # h2load's flags
  "Lunar -t 4, hello world, h2load HTTP/1.1 (64 conns)" => %w[--h1 -c64],
  "Lunar -t 4, hello world, h2load h2c (64 conns × 1 stream)" => %w[-c64 -m1],
  "Lunar -t 4, hello world, h2load h2c (8 conns × 8 streams)" => %w[-c8 -m8],
}.freeze

# curl's --write-out, not a Ruby format string.
CURL_TIMING = "%{size_download} %{time_total}" # rubocop:disable Style/FormatStringToken

def stream(command)
  port = free_port
  with_server(command.call(port), port, chdir: ROOT) do |pid|
    before = cpu_seconds(pid)
    bytes, seconds = IO.popen(["curl", "-s", "-o", "/dev/null", "-w", CURL_TIMING, "http://127.0.0.1:#{port}/"], &:read).split.map(&:to_f)
    { mb_s: bytes / 1e6 / seconds, cpu_per_gib: (cpu_seconds(pid) - before) / (bytes / (1024**3)) }
  end
end

# Server CPU per request while the load (given the port, it returns the requests answered)
# runs for SECONDS after a 1 s warm-up, and requests/s.
def cpu_per_request(command)
  port = free_port
  with_server(command.call(port), port, chdir: ROOT) do |pid|
    wrk(port, %w[-t1 -c16], 1)
    before = cpu_seconds(pid)
    requests = yield(port)
    { cpu_us: (cpu_seconds(pid) - before) / [requests, 1].max * 1e6, rps: requests.fdiv(SECONDS) }
  end
end

# Requests wrk got answered in `seconds`.
def wrk(port, args, seconds = SECONDS)
  IO.popen(["wrk", *args, "-d#{seconds}s", "http://127.0.0.1:#{port}/"], &:read)[/(\d+) requests in/, 1].to_i
end

# Requests h2load got answered in SECONDS.
def h2load(port, args)
  out = IO.popen(["h2load", *args, "-D", SECONDS.to_s, "-t1", "http://127.0.0.1:#{port}/"], err: File::NULL, &:read)
  out[/(\d+) succeeded/, 1].to_i
end

runs = Hash.new { |h, k| h[k] = [] }
ROUNDS.times do |round|
  STREAMS.each { |name, command| runs[name] << stream(command) }
  SEED.each { |name, command| runs[name] << cpu_per_request(command) { |port| wrk(port, %w[-t2 -c200 --timeout 5s]) } }
  HELLO.each { |name, command| runs[name] << cpu_per_request(command) { |port| wrk(port, %w[-t1 -c64]) } }
  H2LOAD.each { |name, flags| runs[name] << cpu_per_request(HELLO.fetch("Lunar -t 4, hello world")) { |port| h2load(port, flags) } }
  runs.each { |name, r| warn "round #{round + 1} #{name}: #{r.last}" }
end
mean = ->(name, key) { runs[name].sum { |r| r[key] } / runs[name].size }
spread = ->(name, key, fmt) { runs[name].map { |r| format(fmt, r[key]) }.join(", ") }

ratio = ->(a, b, key) { mean[a, key] / mean[b, key] }
deferrable = ratio["Lunar --evented, deferrable", "Thin 1.8, deferrable", :mb_s]
each_body = ratio["Lunar -t 4, each", "Puma 5 -t 4:4, each", :mb_s]
seed = ratio["Lunar --evented, seed app", "Thin 1.8, seed app", :cpu_us]
less_than_puma = ratio["Puma 5 -t 4:4, hello world", "Lunar -t 4, hello world", :cpu_us]
vs_floor = ratio["Lunar -t 4, hello world", "hyper floor, hello world", :cpu_us]
inline_less_than_puma = ratio["Puma 5 -t 4:4, hello world", "Lunar --io-threads 0 -t 1, hello world", :cpu_us]
inline_vs_floor = ratio["Lunar --io-threads 0 -t 1, hello world", "hyper floor, hello world", :cpu_us]
h1, single, multiplexed = H2LOAD.keys
h2_single = ratio[single, h1, :cpu_us]
h2_multiplexed = ratio[multiplexed, h1, :cpu_us]

BenchChart.bars("perf-streams", title: "1 GiB streamed to curl, MB/s (#{ROUNDS} runs, mean; higher is better)",
                                rows: STREAMS.keys.map { |n| [n, mean[n, :mb_s].round] }, unit: "MB/s")
BenchChart.bars("perf-cpu", title: "Server CPU per request, µs (#{ROUNDS} runs, mean; lower is better)",
                            rows: (SEED.keys + HELLO.keys + H2LOAD.keys).map { |n| [n, mean[n, :cpu_us]] }, unit: "µs")

check = ->(ok) { ok ? "met" : "not yet" }
TITLE = "## Against issue #19's targets (same run)"
section = <<~MD
  #{TITLE}

  Measured by `bench/run-perf` on #{Time.now.utc.strftime('%Y-%m-%d')}, #{Etc.nprocessors} cores, #{ROUNDS} rounds,
  servers alternated. Streams: curl reads 1 GiB as fast as it can. CPU per request: utime +
  stime of the server process over the client's #{SECONDS} s (seed app: `wrk -t2 -c200`; hello world:
  `wrk -t1 -c64`; and `h2load -t1` with 64 requests in flight over HTTP/1.1 and over h2c,
  one client for both protocols). Inline is `--io-threads 0 -t 1`: no I/O thread, the app's
  one thread does the I/O between requests (Thin's model). Held long-polls and the
  10,000-poll fan-out are `bench/run-scale`'s.

  ![streams](charts/perf-streams.svg)

  ![CPU per request](charts/perf-cpu.svg)

  | server | each run | mean | server CPU |
  | --- | --- | ---: | ---: |
  #{STREAMS.keys.map { |n| format('| %s | %s MB/s | %.0f MB/s | %.2f s per GiB |', n, spread[n, :mb_s, '%.0f'], mean[n, :mb_s], mean[n, :cpu_per_gib]) }.join("\n")}
  #{(SEED.keys + HELLO.keys + H2LOAD.keys).map { |n| format('| %s | %s µs | %.1f µs per request | %.0f req/s |', n, spread[n, :cpu_us, '%.1f'], mean[n, :cpu_us], mean[n, :rps]) }.join("\n")}

  | row | goal | this run | |
  | --- | --- | --- | --- |
  | deferrable 1 GiB stream | ≥ 1.0× Thin | #{format('%.2f', deferrable)}× | #{check[deferrable >= 1.0]} |
  | `each` 1 GiB stream | ≥ 1.0× Puma | #{format('%.2f', each_body)}× | #{check[each_body >= 1.0]} |
  | seed app, CPU per request | ≤ 0.33× Thin | #{format('%.2f', seed)}× | #{check[seed <= 0.33]} |
  | hello world, CPU per request | ≥ 5× less than Puma | `-t 4`: #{format('%.1f', less_than_puma)}× less; inline: #{format('%.1f', inline_less_than_puma)}× less | #{check[less_than_puma >= 5]} (`-t 4`), #{check[inline_less_than_puma >= 5]} (inline) |
  | hello world, CPU per request | ≤ 2× the hyper floor | `-t 4`: #{format('%.2f', vs_floor)}×; inline: #{format('%.2f', inline_vs_floor)}× | #{check[vs_floor <= 2]} (`-t 4`), #{check[inline_vs_floor <= 2]} (inline) |
  | hello world over h2c, CPU per request | on a par with HTTP/1.1 (≤ 1.10×) | 8 × 8 streams: #{format('%.2f', h2_multiplexed)}×; 64 × 1: #{format('%.2f', h2_single)}× | #{check[h2_multiplexed <= 1.1]} (multiplexed) |
MD

path = File.join(ROOT, "docs/benchmarks.md")
doc = File.read(path)
start = doc.index(TITLE)
doc = if start
        rest = doc.index(/^## /, start + TITLE.size)
        doc[0...start] + section + (rest ? "\n#{doc[rest..]}" : "")
      else
        "#{doc.rstrip}\n\n#{section}"
      end
File.write(path, doc)
puts section
