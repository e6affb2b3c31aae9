# frozen_string_literal: true

# Clients that never read, over HTTP/2 (issue #18's probes, the ones that held memory):
# 2 connections × 100 streams GET a 1 MiB body with SETTINGS_INITIAL_WINDOW_SIZE 0 and
# PING every 0.7 s, for ROUND_SECONDS; ROUNDS rounds in a row against one server, per mode
# and body kind. Reported: the server's RSS before, at its peak in each round, and after;
# whether the attack's connections were closed by the server; and /ping latency (p50, p99)
# from another client during the attack. Loopback only; bounded. Run through bench/run-abuse.
# Appends to docs/security.md.
require "http/2"
require_relative "support"
include BenchSupport # rubocop:disable Style/MixinUsage -- a script, not a library

ROUNDS = Integer(ENV.fetch("BENCH_ROUNDS", "6"))
ROUND_SECONDS = Float(ENV.fetch("BENCH_ROUND_SECONDS", "8"))
CONNECTIONS = 2
STREAMS = 100
APP = File.join(ROOT, "bench/apps/abuse.ru")

MODES = {
  "threaded (--threaded --async)" => ["--threaded", "--async"],
  "evented (--evented)" => ["--evented"],
}.freeze
PATHS = { "to_ary 1 MiB" => "/big", "each 16 × 64 KiB" => "/stream" }.freeze

# A WebSocket client that sends PINGs as fast as it can and never reads.
class PingFlooder
  PING = [0x89, 0x80 | 125].pack("CC") + ("\0" * 4) + ("p" * 125) # masked with a zero key

  def initialize(port)
    @sock = TCPSocket.new("127.0.0.1", port)
    @sock.write("GET /socket HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" \
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    @sock.readpartial(4096) # the 101
    @sent = 0
    @cut = false
    @thread = Thread.new { flood }
  end

  attr_reader :sent

  def cut? = @cut

  def close
    @thread.kill
    @sock.close
  end

  private

  def flood
    burst = PING * 512
    loop do
      n = @sock.write_nonblock(burst, exception: false)
      n == :wait_writable ? @sock.wait_writable(1) : @sent += n
      break if n.is_a?(Integer) && n < burst.bytesize && partial!(burst.byteslice(n..))
    end
  rescue IOError, SystemCallError
    @cut = true
  end

  # Writes the rest of a burst (whole frames only), blocking.
  def partial!(rest)
    @sock.write(rest)
    @sent += rest.bytesize
    false
  end
end

# One attacking connection: window 0 for every stream, STREAMS GETs, a PING every 0.7 s.
class ZeroWindowClient
  def initialize(port, path)
    @sock = TCPSocket.new("127.0.0.1", port)
    @conn = HTTP2::Client.new(settings_initial_window_size: 0)
    @conn.on(:frame) { |bytes| write(bytes) }
    @closed = false
    @lock = Mutex.new # http-2's connection is not thread-safe: the reader and the pinger share it
    @reader = Thread.new { read_loop }
    @lock.synchronize do
      STREAMS.times do
        stream = @conn.new_stream
        stream.headers({ ":scheme" => "http", ":method" => "GET", ":authority" => "localhost", ":path" => path }, end_stream: true)
      end
    end
    @pinger = Thread.new { ping_loop }
  end

  def closed_by_server? = @closed

  def close
    [@pinger, @reader].each(&:kill)
    @sock.close unless @sock.closed?
  end

  private

  def write(bytes)
    @sock.write(bytes)
  rescue IOError, SystemCallError
    @closed = true
  end

  def read_loop
    loop do
      data = @sock.readpartial(65_536)
      @lock.synchronize { @conn << data }
    end
  rescue IOError, SystemCallError, HTTP2::Error::Error
    @closed = true
  end

  def ping_loop
    loop do
      sleep 0.7
      @lock.synchronize { @conn.ping("lunar-ab") }
    end
  rescue StandardError
    nil
  end
end

# /ping round trips on keep-alive HTTP/1.1 while the attack runs: [p50, p99] in ms.
def ping_latencies(port, seconds)
  times = []
  deadline = Time.now + seconds
  Net::HTTP.start("127.0.0.1", port, read_timeout: 10) do |http|
    while Time.now < deadline
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      http.get("/ping")
      times << ((Process.clock_gettime(Process::CLOCK_MONOTONIC) - started) * 1000)
      sleep 0.02
    end
  end
  times.sort!
  [percentile(times, 0.5), percentile(times, 0.99)]
end

def attack_round(pid, port, path)
  peak = rss_kib(pid)
  clients = Array.new(CONNECTIONS) { ZeroWindowClient.new(port, path) }
  sampler = Thread.new do
    loop do
      peak = [peak, rss_kib(pid)].max
      sleep 0.1
    end
  end
  p50, p99 = ping_latencies(port, ROUND_SECONDS)
  closed = clients.count(&:closed_by_server?)
  clients.each(&:close)
  sampler.kill
  { peak_mib: peak / 1024.0, p50: p50, p99: p99, closed: closed }
end

def attack(flags, path)
  port = free_port
  command = lunar_command(port, APP, *flags, "--timeout", "5", "--write-timeout", "1")
  with_server(command, port, env: LIB_ENV, chdir: ROOT) do |pid|
    3.times { Net::HTTP.get(URI("http://127.0.0.1:#{port}#{path}")) } # warm, buffers touched once
    base = rss_kib(pid) / 1024.0
    rounds = Array.new(ROUNDS) { attack_round(pid, port, path) }
    sleep 1
    { base_mib: base, rounds: rounds, after_mib: rss_kib(pid) / 1024.0 }
  end
end

# One client flooding PINGs on a native WebSocket for ROUND_SECONDS: RSS peak, /ping.
def ping_flood(flags)
  port = free_port
  command = lunar_command(port, APP, *flags, "--timeout", "5", "--write-timeout", "1")
  with_server(command, port, env: LIB_ENV, chdir: ROOT) do |pid|
    base = rss_kib(pid) / 1024.0
    peak = base
    flooder = PingFlooder.new(port)
    sampler = Thread.new do
      loop do
        peak = [peak, rss_kib(pid) / 1024.0].max
        sleep 0.1
      end
    end
    p50, p99 = ping_latencies(port, ROUND_SECONDS)
    sampler.kill
    flooder.close
    { base_mib: base, peak_mib: peak, p50: p50, p99: p99, sent_mib: flooder.sent / 1_048_576.0, cut: flooder.cut? }
  end
end

floods = MODES.map do |mode, flags|
  r = ping_flood(flags)
  warn format("%-30s WebSocket PING flood: RSS %.0f → peak %.0f MiB, %.1f MiB of pings sent, cut %s; /ping p99 %.1f ms",
              mode, r[:base_mib], r[:peak_mib], r[:sent_mib], r[:cut], r[:p99])
  [mode, r]
end

results = MODES.flat_map do |mode, flags|
  PATHS.map do |kind, path|
    r = attack(flags, path)
    peaks = r[:rounds].map { |x| x[:peak_mib] }
    warn format("%-30s %-18s RSS %.0f MiB, peaks %s, after %.0f; /ping p99 %s ms; closed %s", mode, kind, r[:base_mib],
                peaks.map { |p| p.round.to_s }.join(" "), r[:after_mib], r[:rounds].map { |x| x[:p99].round(1) }.join(" "),
                r[:rounds].map { |x| x[:closed] }.join(" "))
    [mode, kind, r]
  end
end

rows = results.map do |mode, kind, r|
  peaks = r[:rounds].map { |x| x[:peak_mib] }
  p99 = r[:rounds].map { |x| x[:p99] }.max
  format("| %s | %s | %.0f MiB | %s | +%.0f MiB | %.0f MiB | %.1f ms | %d of %d |", mode, kind, r[:base_mib], peaks.map { |p| format("%.0f", p) }.join(" → "),
         peaks.max - r[:base_mib], r[:after_mib], p99, r[:rounds].sum { |x| x[:closed] }, ROUNDS * CONNECTIONS)
end
report = <<~MD

  ## Clients that never read, over HTTP/2 (#{Time.now.utc.strftime('%Y-%m-%d')})

  Measured by `bench/run-abuse`: per round, #{CONNECTIONS} HTTP/2 connections each open #{STREAMS} streams
  (`GET` of a 1 MiB body) with `SETTINGS_INITIAL_WINDOW_SIZE` 0 and PING every 0.7 s, for
  #{ROUND_SECONDS} s; #{ROUNDS} rounds in a row against one server (`--timeout 5 --write-timeout 1`),
  while another client sends `GET /ping` every 20 ms on a keep-alive connection. RSS is the
  server's (VmRSS): before the attack, the peak of each round, after the last.

  | mode | body | RSS before | peak per round | worst growth | RSS after | /ping p99 (worst round) | attack connections closed by the server |
  | --- | --- | ---: | --- | ---: | ---: | ---: | ---: |
  #{rows.join("\n")}

  A WebSocket client (`Lunar::Topic#websocket`) sending PINGs as fast as it can and reading
  nothing, for #{ROUND_SECONDS} s, same limits:

  | mode | RSS before | peak | PINGs it got to send | cut off by the server | /ping p50 | /ping p99 |
  | --- | ---: | ---: | ---: | --- | ---: | ---: |
  #{floods.map { |mode, r| format('| %s | %.0f MiB | %.0f MiB | %.1f MiB | %s | %.1f ms | %.1f ms |', mode, r[:base_mib], r[:peak_mib], r[:sent_mib], r[:cut] ? 'yes' : 'no', r[:p50], r[:p99]) }.join("\n")}
MD
File.write(File.join(ROOT, "docs/security.md"), report, mode: "a")
puts report
