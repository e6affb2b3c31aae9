# frozen_string_literal: true

# Work balanced across workers (issue #16): `-w 2 -t 2` on an app where one request in ten
# sleeps 50 ms (bench/apps/uneven.ru), wrk opening a new connection per request
# (`Connection: close`, so every request is a new accept). Lunar with its default
# `--wait-for-less-busy-worker 0.005` (a worker whose threads are all busy leaves the next
# connection to a sibling) and with 0 (each worker accepts whenever it can), and Puma 5
# `-w 2 -t 2:2` (its own wait_for_less_busy_worker, 0.005 by default), same run.
# Run through bench/run-balance. Appends to docs/benchmarks.md; draws docs/charts/balance.svg.
require_relative "support"
require_relative "chart"
include BenchSupport # rubocop:disable Style/MixinUsage -- a script, not a library

ROUNDS = Integer(ENV.fetch("BENCH_ROUNDS", "2"))
SECONDS = Integer(ENV.fetch("BENCH_SECONDS", "8"))
APP = File.join(ROOT, "bench/apps/uneven.ru")

SERVERS = {
  "Lunar -w 2 -t 2" => ->(port) { lunar_command(port, APP, "-w", "2", "-t", "2") },
  "Lunar -w 2 -t 2, no wait" => ->(port) { lunar_command(port, APP, "-w", "2", "-t", "2", "--wait-for-less-busy-worker", "0") },
  "Puma 5 -w 2 -t 2:2" => ->(port) { puma_command(port, APP, "-w", "2", "-t", "2:2") },
}.freeze

# wrk's latency distribution, in ms, and requests per second.
def measure(port)
  out = IO.popen(["wrk", "-t2", "-c8", "-d#{SECONDS}s", "--latency", "-H", "Connection: close", "http://127.0.0.1:#{port}/"], &:read)
  ms = ->(text) { text.to_f * { "us" => 0.001, "ms" => 1, "s" => 1000 }.fetch(text[/[a-z]+\z/]) }
  { p50: ms.call(out[/^\s+50%\s+(\S+)/, 1]), p99: ms.call(out[/^\s+99%\s+(\S+)/, 1]), rps: out[%r{Requests/sec:\s+([\d.]+)}, 1].to_f,
    errors: out[/Socket errors: (.*)$/, 1].to_s.scan(/\d+/).sum(&:to_i) }
end

results = Hash.new { |h, k| h[k] = [] }
ROUNDS.times do
  SERVERS.each do |name, command|
    port = free_port
    with_server(command.call(port), port) do
      sleep 2 # both workers booted
      results[name] << measure(port).tap { |r| warn "#{name}: #{r}" }
    end
  end
end

BenchChart.bars("balance", title: "p99 latency, 1 request in 10 sleeps 50 ms, -w 2 -t 2 (lower is better)",
                           rows: results.map { |name, runs| [name, runs.sum { |r| r[:p99] } / runs.size] }, unit: "ms")

rows = results.map do |name, runs|
  cells = %i[p50 p99 rps].map { |key| runs.map { |r| format(key == :rps ? "%.0f" : "%.1f", r[key]) }.join(", ") }
  "| #{name} | #{cells.join(' | ')} | #{runs.sum { |r| r[:errors] }} |"
end
report = <<~MD

  ## Work balanced across workers (same run)

  `bench/run-balance`: `-w 2 -t 2`, one request in ten sleeps 50 ms (bench/apps/uneven.ru),
  `wrk -t2 -c8 -d#{SECONDS}s -H "Connection: close"` (a new connection per request), #{ROUNDS} runs each.
  ![p99](charts/balance.svg)

  | server | p50 ms | p99 ms | requests/s | socket errors |
  | --- | --- | --- | --- | --- |
  #{rows.join("\n")}
MD
puts report
File.write(File.join(ROOT, "docs/benchmarks.md"), report, mode: "a")
