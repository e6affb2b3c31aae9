# frozen_string_literal: true

# Async benchmarks, Lunar evented vs Thin 1.8, same run, alternated:
#   (a) the seed app with a 10 ms timer, 1,000 concurrent connections (wrk): requests/s and
#       server CPU per request;
#   (b) one deferrable body streaming 1 GiB in 64 KiB chunks to curl: MB/s and the server's
#       peak RSS (VmHWM), to a fast reader and to a slow one (curl --limit-rate).
# Run through bench/run-async, which builds what is needed. Appends to docs/benchmarks.md.
require "etc"
require "rbconfig"
require_relative "support"
include BenchSupport # rubocop:disable Style/MixinUsage -- a script, not a library

SECONDS = Integer(ENV.fetch("BENCH_SECONDS", "10"))
CONNECTIONS = Integer(ENV.fetch("BENCH_ASYNC_CONNECTIONS", "1000"))

SERVERS = {
  "Lunar --evented" => ->(port, app) { lunar_command(port, app, "--evented", "--timeout", "0") },
  "Thin 1.8" => ->(port, app) { thin_command(port, app, "-t", "0", "--max-conns", "20000") },
}.freeze

def serve(name, app, &block)
  port = free_port
  with_server(SERVERS.fetch(name).call(port, File.join(ROOT, app)), port, chdir: ROOT) { |pid| block.call(port, pid) }
end

def seed_run(name)
  serve(name, "bench/apps/seed_10ms.ru") do |port, pid|
    system("wrk", "-t1", "-c100", "-d1s", "http://127.0.0.1:#{port}/", out: File::NULL)
    before = cpu_seconds(pid)
    out = IO.popen(["wrk", "-t2", "-c#{CONNECTIONS}", "-d#{SECONDS}s", "--timeout", "5s", "--latency", "http://127.0.0.1:#{port}/"], &:read)
    cpu = cpu_seconds(pid) - before
    requests = out[/(\d+) requests in/, 1].to_i
    { rps: requests.to_f / SECONDS, cpu_us: cpu / [requests, 1].max * 1e6, p99: out[/^\s+99%\s+(\S+)/, 1],
      errors: out[/Socket errors: (.*)/, 1] }
  end
end

# `rate`: curl's --limit-rate, to play a slow reader (nil: as fast as it can).
# curl's --write-out, not a Ruby format string.
CURL_TIMING = "%{size_download} %{time_total}" # rubocop:disable Style/FormatStringToken

def stream_run(name, rate = nil)
  serve(name, "bench/apps/stream_1g.ru") do |port, pid|
    base = rss_kib(pid) / 1024.0
    limit = rate ? ["--limit-rate", rate] : []
    out = IO.popen(["curl", "-s", *limit, "-o", "/dev/null", "-w", CURL_TIMING, "http://127.0.0.1:#{port}/"], &:read)
    bytes, seconds = out.split.map(&:to_f)
    { mb_s: bytes / 1e6 / seconds, bytes: bytes, peak: peak_rss_kib(pid) / 1024.0, base: base }
  end
end

seed = SERVERS.keys.to_h { |n| [n, seed_run(n)] }
stream = SERVERS.keys.to_h { |n| [n, stream_run(n)] }
SLOW = ENV.fetch("BENCH_SLOW_RATE", "200M")
slow = SERVERS.keys.to_h { |n| [n, stream_run(n, SLOW)] }
seed.merge!(SERVERS.keys.to_h { |n| [n, seed_run(n)] }) if ENV["BENCH_ROUNDS"].to_i > 1

lunar, thin = seed.values_at("Lunar --evented", "Thin 1.8")
slunar, sthin = stream.values_at("Lunar --evented", "Thin 1.8")
report = <<~MD

  ## Async responses (Lunar evented vs Thin, same run)

  Measured by `bench/run-async` on #{Time.now.utc.strftime('%Y-%m-%d')}, #{Etc.nprocessors} cores.

  ### The seed app, 10 ms timer, #{CONNECTIONS} concurrent connections (wrk -t2, #{SECONDS} s)

  | server | requests/s | p99 latency | server CPU per request | CPU vs Thin |
  | --- | ---: | ---: | ---: | ---: |
  #{seed.map { |n, r| format('| %s | %.0f | %s | %.1f µs | %.2f× |', n, r[:rps], r[:p99], r[:cpu_us], r[:cpu_us] / thin[:cpu_us]) }.join("\n")}

  #{seed.select { |_, r| r[:errors] }.map { |n, r| "- #{n}: wrk saw socket errors (#{r[:errors]})" }.join("\n")}

  ### One deferrable body streaming 1 GiB in 64 KiB chunks to curl

  | server | throughput | bytes received | RSS before | peak RSS |
  | --- | ---: | ---: | ---: | ---: |
  #{stream.map { |n, r| format('| %s | %.0f MB/s | %d | %.0f MiB | %.0f MiB |', n, r[:mb_s], r[:bytes], r[:base], r[:peak]) }.join("\n")}

  ### The same body to a slow reader (curl --limit-rate #{SLOW})

  | server | throughput | bytes received | RSS before | peak RSS |
  | --- | ---: | ---: | ---: | ---: |
  #{slow.map { |n, r| format('| %s | %.0f MB/s | %d | %.0f MiB | %.0f MiB |', n, r[:mb_s], r[:bytes], r[:base], r[:peak]) }.join("\n")}

  Lunar caps what one streamed response may queue for its client at `--stream-buffer`
  (1 MiB): past it, a write from the reactor waits for the client up to `--write-timeout`
  (1 s), then cuts that client off; Thin buffers whatever the app writes in EventMachine's
  outbound queue, so its peak RSS grows with the body. CPU per async request: Lunar
  #{format('%.2f', lunar[:cpu_us] / thin[:cpu_us])}× Thin's; streaming: #{format('%.1f', slunar[:mb_s] / sthin[:mb_s])}× Thin's throughput.
MD
File.write(File.join(ROOT, "docs/benchmarks.md"), report, mode: "a")
puts report
