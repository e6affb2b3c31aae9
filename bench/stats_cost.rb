# frozen_string_literal: true

# What the control app costs (issue #16): hello world under `wrk -t1 -c32` on `lunar -w 2`
# with its control app on, server CPU per request (every process of the cluster, the
# control process included) with nobody asking, and with a scraper reading /metrics every
# second (as Prometheus would, more often than its usual 15 s). Same run, alternated.
# Run through bench/run-stats-cost. Appends to docs/benchmarks.md.
require_relative "support"
include BenchSupport # rubocop:disable Style/MixinUsage -- a script, not a library

ROUNDS = Integer(ENV.fetch("BENCH_ROUNDS", "3"))
SECONDS = Integer(ENV.fetch("BENCH_SECONDS", "10"))
APP = File.join(ROOT, "bench/apps/bench.ru")

# A scraper reading /metrics every second, as Prometheus would (more often than its usual 15 s).
def scraper(control_port)
  Thread.new do
    loop do
      Net::HTTP.get(URI("http://127.0.0.1:#{control_port}/metrics?token=t"))
      sleep 1
    end
  end
end

results = Hash.new { |h, k| h[k] = [] }
ROUNDS.times do
  [false, true].each do |scrape|
    port = free_port
    control_port = free_port
    command = lunar_command(port, APP, "-w", "2", "--worker-check-interval", "1",
                            "--control-url", "tcp://127.0.0.1:#{control_port}", "--control-token", "t")
    with_server(command, port, env: LIB_ENV) do |pid|
      sleep 2 # both workers booted
      scraping = (scraper(control_port) if scrape)
      before = tree_cpu_seconds(pid)
      out = IO.popen(["wrk", "-t1", "-c32", "-d#{SECONDS}s", "http://127.0.0.1:#{port}/"], &:read)
      cpu = tree_cpu_seconds(pid) - before
      scraping&.kill
      requests = out[/(\d+) requests in/, 1].to_i
      results[scrape] << [requests, cpu * 1e6 / requests].tap { |r| warn "scrape=#{scrape}: #{r}" }
    end
  end
end

row = ->(scrape) { results[scrape].map { |req, us| format("%d req, %.1f µs", req, us) }.join("; ") }
mean = ->(scrape) { results[scrape].sum(&:last) / results[scrape].size }
report = <<~MD

  ## What the control app costs (same run)

  `bench/run-stats-cost`: `lunar -w 2` with `--control-url`, `wrk -t1 -c32 -d#{SECONDS}s` on hello world,
  server CPU per request (every process of the cluster), #{ROUNDS} runs each, alternated.

  | | runs | mean CPU per request |
  | --- | --- | --- |
  | nobody asking | #{row.call(false)} | #{format('%.1f', mean.call(false))} µs |
  | `/metrics` scraped every second | #{row.call(true)} | #{format('%.1f', mean.call(true))} µs |
MD
puts report
File.write(File.join(ROOT, "docs/benchmarks.md"), report, mode: "a")
