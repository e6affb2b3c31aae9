# frozen_string_literal: true

# Throughput benchmark: hello world / 64 KiB / 1 MiB streamed, for Lunar, Puma 5 (-t 4:4),
# Thin 1.8 and the bare hyper floor (bench/crates/floor), alternated in rounds so they share the
# machine's conditions. Reports requests/s, p99 latency and server CPU time per request
# (utime+stime of the server process from /proc, all threads). With 2 cores wrk competes
# with the server, so CPU per request is the figure to compare, not requests/s alone.
require "etc"
require "rbconfig"
require_relative "support"
include BenchSupport # rubocop:disable Style/MixinUsage -- a script, not a library

APP = File.join(ROOT, "bench/apps/bench.ru")
SECONDS = Integer(ENV.fetch("BENCH_SECONDS", "5"))
ROUNDS = Integer(ENV.fetch("BENCH_ROUNDS", "2"))
CONNECTIONS = Integer(ENV.fetch("BENCH_CONNECTIONS", "32"))
FLOOR = File.join(ROOT, "target/release/lunar-floor")

SERVERS = {
  "Lunar" => ->(port) { lunar_command(port, APP, "-t", "4") },
  "Puma 5 (-t 4:4)" => ->(port) { puma_command(port, APP, "-t", "4:4") },
  "Thin 1.8" => ->(port) { thin_command(port, APP) },
  "hyper floor" => ->(port) { [FLOOR, port.to_s, "2"] },
}.freeze

SCENARIOS = { "hello world" => "/", "64 KiB body" => "/64k", "1 MiB streamed" => "/stream" }.freeze

Result = Struct.new(:requests, :seconds, :cpu, :p99s, :errors) do
  def rps = requests / seconds
  def cpu_us = requests.zero? ? Float::NAN : cpu / requests * 1e6
  def p99_ms = p99s.sum / p99s.size
end

def duration_ms(text)
  value, unit = text.match(/([\d.]+)(us|ms|s)/).captures
  value.to_f * { "us" => 0.001, "ms" => 1.0, "s" => 1000.0 }.fetch(unit)
end

def wrk(port, path, seconds)
  out = IO.popen(["wrk", "-t1", "-c#{CONNECTIONS}", "-d#{seconds}s", "--latency", "http://127.0.0.1:#{port}#{path}"], &:read)
  requests = out[/(\d+) requests in/, 1].to_i
  p99 = duration_ms(out[/^\s+99%\s+(\S+)/, 1] || "0ms")
  errors = out[/Socket errors: (.*)/, 1]
  [requests, p99, errors]
end

def measure(name, path)
  port = free_port
  with_server(SERVERS.fetch(name).call(port), port, chdir: ROOT) do |pid|
    wrk(port, path, 1) # warm-up
    before = cpu_seconds(pid)
    requests, p99, errors = wrk(port, path, SECONDS)
    [requests, cpu_seconds(pid) - before, p99, errors]
  end
end

results = Hash.new { |h, k| h[k] = Result.new(0, 0.0, 0.0, [], nil) }
ROUNDS.times do |round|
  SCENARIOS.each do |scenario, path|
    SERVERS.each_key do |name|
      requests, cpu, p99, errors = measure(name, path)
      r = results[[scenario, name]]
      r.requests += requests
      r.seconds += SECONDS
      r.cpu += cpu
      r.p99s << p99
      r.errors = errors if errors
      warn format("round %d  %-15s %-18s %9.0f req/s  %7.1f µs CPU/req  p99 %.2f ms%s",
                  round + 1, scenario, name, requests.to_f / SECONDS, cpu / [requests, 1].max * 1e6, p99,
                  errors ? "  (socket errors: #{errors})" : "")
    end
  end
end

def table(results)
  lines = []
  SCENARIOS.each_key do |scenario|
    floor = results[[scenario, "hyper floor"]]
    puma = results[[scenario, "Puma 5 (-t 4:4)"]]
    lines << "\n### #{scenario}\n"
    lines << "| server | requests/s | p99 latency | server CPU per request | CPU vs floor | CPU vs Puma |"
    lines << "| --- | ---: | ---: | ---: | ---: | ---: |"
    notes = []
    SERVERS.each_key do |name|
      r = results[[scenario, name]]
      lines << format("| %s | %.0f | %.2f ms | %.1f µs | %.2f× | %.2f× |", name, r.rps, r.p99_ms, r.cpu_us,
                      r.cpu_us / floor.cpu_us, r.cpu_us / puma.cpu_us)
      notes << "- #{name}: wrk saw socket errors (#{r.errors})" if r.errors
    end
    lines << "" << notes.join("\n") unless notes.empty?
  end
  lines.join("\n")
end

cpu_model = File.read("/proc/cpuinfo")[/model name\s*:\s*(.*)/, 1]
report = <<~MD
  # Benchmarks

  Measured by `bench/run` on #{Time.now.utc.strftime('%Y-%m-%d')}: #{Etc.nprocessors} cores (#{cpu_model}),
  Ruby #{RUBY_VERSION}, wrk with 1 thread and #{CONNECTIONS} connections, #{ROUNDS} rounds of
  #{SECONDS} s per server and scenario, servers alternated within each round. Server CPU
  per request is utime+stime of the server process (all threads, from `/proc/PID/stat`)
  divided by requests completed; it is the figure to compare, because on 2 cores wrk takes
  CPU from the server and requests/s mostly shows how the two share the machine.

  Servers: Lunar `-t 4` (tokio I/O threads: one per core), Puma 5.6 `-t 4:4` (single
  process), Thin 1.8 (single process), and the hyper floor: a bare hyper server with 2 I/O
  threads, Lunar's hyper settings and allocator, doing the same work without Ruby
  (`bench/crates/floor`). All run `bench/apps/bench.ru` (the floor answers the same routes)
  with `-e production`.
  #{table(results)}

  Commands, exactly:

  ```
  #{SERVERS.map { |n, cmd| "#{n}: #{cmd.call('PORT').map { |a| a.delete_prefix("#{ROOT}/") }.join(' ')}" }.join("\n")}
  wrk -t1 -c#{CONNECTIONS} -d#{SECONDS}s --latency http://127.0.0.1:PORT/{,64k,stream}
  ```
MD
File.write(File.join(ROOT, "docs/benchmarks.md"), report)
puts report
