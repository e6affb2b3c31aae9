# frozen_string_literal: true

# EventSource soak: N subscribers of the Comet demo's /events, messages published at a
# target rate for S seconds; then how many frames arrived of those expected, how many ids
# were skipped (lost), how many streams were cut off, and the server's RSS over the run.
# Thin 1.8 (plain async.callback) vs Lunar --evented (plain, and Lunar::Topic), same run,
# and the bare hyper floor (bench/crates/floor: the same streams and frames, no Ruby).
#   BENCH_SOAK_SUBSCRIBERS=10000 BENCH_SOAK_RATE=1000 BENCH_SOAK_SECONDS=30 bench/run-soak
require "rbconfig"
require_relative "support"
include BenchSupport # rubocop:disable Style/MixinUsage -- a script, not a library

APP = COMET_APP
SUBSCRIBERS = Integer(ENV.fetch("BENCH_SOAK_SUBSCRIBERS", "10000"))
RATE = Integer(ENV.fetch("BENCH_SOAK_RATE", "1000"))
SECONDS = Integer(ENV.fetch("BENCH_SOAK_SECONDS", "30"))

VARIANTS = {
  "Thin 1.8, async.callback" => [thin_command("PORT", APP, "-t", "0", "--max-conns", "20000"), "0"],
  "Lunar, async.callback" => [lunar_command("PORT", APP, "--evented", "--timeout", "0", "--queue", "20000"), "0"],
  "Lunar, Lunar::Topic" => [lunar_command("PORT", APP, "--evented", "--timeout", "0", "--queue", "20000"), "1"],
  "bare hyper floor" => [[HYPER_FLOOR, "PORT", "2"], "0"],
}.freeze

# Publishes at up to RATE messages/s for SECONDS of wall time; a server slower to answer a
# publish gets fewer. Returns [messages published, seconds taken].
def publish(port)
  started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  published = 0
  Net::HTTP.start("127.0.0.1", port) do |http|
    loop do
      now = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      break if now - started >= SECONDS

      ahead = started + published.fdiv(RATE) - now
      sleep ahead if ahead.positive?
      http.post("/publish", "msg=m#{published}")
      published += 1
    end
  end
  [published, Process.clock_gettime(Process::CLOCK_MONOTONIC) - started]
end

# Samples the RSS of `pid` every second (MiB) into the returned Array until the thread is killed.
def sample_rss(pid)
  samples = []
  thread = Thread.new do
    loop do
      samples << (rss_kib(pid) / 1024.0)
      sleep 1
    end
  end
  [samples, thread]
end

# Opens SUBSCRIBERS EventSource streams; returns the loaders and how many opened.
def open_streams(port, native)
  loads = spawn_loaders(port, SUBSCRIBERS, "/events?native=#{native}", SECONDS + 40, "sse")
  held = loads.sum { |io| io.gets.split[1].to_i }
  deadline = Time.now + 30
  sleep 0.1 until comet_stats(port)["streams"] >= held || Time.now > deadline
  [loads, held]
end

def soak(command, native)
  port = free_port
  cmd = command.map { |a| a.sub("PORT", port.to_s) }
  with_server(cmd, port, env: { "RUBYLIB" => File.join(ROOT, "lib") }, chdir: ROOT) do |pid|
    loads, held = open_streams(port, native)
    rss, sampler = sample_rss(pid)
    cpu_before = cpu_seconds(pid)
    published, took = publish(port)
    cpu = cpu_seconds(pid) - cpu_before
    received = tally(loads, held, published)
    sampler.kill
    received.merge(held: held, published: published, rate: published / took, expected: held * published,
                   rss_min: rss.min, rss_max: rss.max, cpu: cpu)
  ensure
    kill_loaders(loads)
  end
end

# What the subscribers received, summed over the loaders (see holdconns' `Tally`).
def tally(loads, held, published)
  frames, gaps, closed, silent, firsts, lasts = loads.map { |io| io.gets.split.drop(1).map(&:to_i) }.transpose.map(&:sum)
  heard = held - silent # ids run from 1 to `published`
  { frames: frames, gaps: gaps, closed: closed, silent: silent, missed_start: firsts - heard, missed_end: (heard * published) - lasts }
end

rows = VARIANTS.map do |name, (command, native)|
  r = soak(command, native)
  warn format("%-26s held %d, published %d (%.0f/s), frames %d of %d (%.1f%%), ids lost %d, missed at start %d, " \
              "at end %d, silent streams %d, cut off %d, RSS %.0f–%.0f MiB",
              name, r[:held], r[:published], r[:rate], r[:frames], r[:expected], 100.0 * r[:frames] / [r[:expected], 1].max,
              r[:gaps], r[:missed_start], r[:missed_end], r[:silent], r[:closed], r[:rss_min], r[:rss_max])
  [name, r]
end

table = rows.map do |name, r|
  format("| %s | %d | %d (%.0f/s) | %d of %d (%.1f%%) | %d | %d / %d / %d | %d | %.0f–%.0f MiB | %.1f s |", name, r[:held], r[:published],
         r[:rate], r[:frames], r[:expected], 100.0 * r[:frames] / [r[:expected], 1].max, r[:gaps], r[:missed_start], r[:missed_end], r[:silent],
         r[:closed], r[:rss_min], r[:rss_max], r[:cpu])
end
report = <<~MD

  ## EventSource soak (same run)

  Measured by `bench/run-soak` on #{Time.now.utc.strftime('%Y-%m-%d')}: #{SUBSCRIBERS} subscribers of the Comet
  demo's `/events`, messages published one `POST /publish` at a time at up to #{RATE}/s for
  #{SECONDS} s (the publisher waits for each answer, so a slow server publishes fewer); the
  subscribers read for 40 s more. Expected frames = subscribers × messages published.
  "Ids lost" counts messages a subscriber never got between two it did; the frames missing
  otherwise were missed at the start (a subscriber whose first id was not the first), at
  the end (its last id was not the last: a stream that stalled) or by silent streams (no
  frame at all); "cut off" counts streams the server closed (Lunar cuts off a client more
  than `--stream-buffer` behind).

  | server | subscribers | published | frames received | ids lost | missed: start / end / silent | cut off | server RSS during | server CPU |
  | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
  #{table.join("\n")}
MD
File.write(File.join(ROOT, "docs/benchmarks.md"), report, mode: "a")
puts report
