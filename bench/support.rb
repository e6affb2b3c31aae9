# frozen_string_literal: true

require "etc"
require "fileutils"
require "json"
require "net/http"
require "rbconfig"
require "socket"
require "tmpdir"

# What every benchmark script needs: ports, server processes, and their CPU and memory as
# /proc reports them; and, for the Comet benchmarks, held-connection load processes.
module BenchSupport
  TICK = Etc.sysconf(Etc::SC_CLK_TCK).to_f
  ROOT = File.expand_path("..", __dir__)
  COMET_APP = File.join(ROOT, "examples/comet/config.ru")
  HOLDCONNS = File.join(ROOT, "target/release/lunar-holdconns")
  HYPER_FLOOR = File.join(ROOT, "target/release/lunar-floor")
  FANOUT_FLOOR = File.join(ROOT, "target/release/lunar-fanout-floor")
  # Connections per load process: under the 20,000 open-file limit, one source address each.
  PER_LOAD_PROCESS = 9_000
  LUNAR = File.join(ROOT, "exe/lunar")
  LIB_ENV = { "RUBYLIB" => File.join(ROOT, "lib") }.freeze

  module_function

  # The servers compared, each quiet, in production, on 127.0.0.1:`port` (a number, or
  # "PORT" for a command shown in a report), with `flags` of its own.
  def lunar_command(port, app, *flags) = [RbConfig.ruby, LUNAR, "-q", "-e", "production", *flags, "-b", "tcp://127.0.0.1:#{port}", app]
  def thin_command(port, app, *flags) = ["thin", "start", "-q", "-e", "production", *flags, "-a", "127.0.0.1", "-p", port.to_s, "-R", app]
  def puma_command(port, app, *flags) = ["puma", "-q", "-e", "production", *flags, "-b", "tcp://127.0.0.1:#{port}", app]

  # The value at `pct` (0..1) of an ascending Array.
  def percentile(sorted, pct) = sorted.empty? ? Float::NAN : sorted[[(sorted.size * pct).ceil - 1, 0].max]

  # `pid` and every process below it (a cluster's master and workers).
  def process_tree(pid)
    children = File.read("/proc/#{pid}/task/#{pid}/children").split.map(&:to_i)
    [pid, *children.flat_map { |c| process_tree(c) }]
  rescue Errno::ENOENT
    []
  end

  def tree_rss_kib(pid) = process_tree(pid).sum { |p| gone_as_zero { rss_kib(p) } }
  def tree_cpu_seconds(pid) = process_tree(pid).sum { |p| gone_as_zero { cpu_seconds(p) } }

  # A process (or thread) may exit between listing and reading it: it then counts 0.
  def gone_as_zero
    yield
  rescue Errno::ENOENT, Errno::ESRCH
    0
  end

  # A redis-server of the benchmark's own on a free loopback port, without persistence;
  # yields the port and kills it afterwards.
  def with_redis
    dir = Dir.mktmpdir("lunar-bench-redis")
    port = free_port
    pid = Process.spawn("redis-server", "--port", port.to_s, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                        "--dir", dir, out: File::NULL, err: File::NULL)
    sleep 0.05 until IO.popen(["redis-cli", "-p", port.to_s, "ping"], err: File::NULL, &:read).start_with?("PONG")
    yield port
  ensure
    if pid
      Process.kill("KILL", pid)
      Process.wait(pid)
    end
    FileUtils.rm_rf(dir) if dir
  end

  def free_port
    TCPServer.open("127.0.0.1", 0) { |s| s.addr[1] }
  end

  # utime + stime of every thread of `pid`, in seconds.
  def cpu_seconds(pid)
    fields = File.read("/proc/#{pid}/stat").split(") ", 2).last.split
    (fields[11].to_i + fields[12].to_i) / TICK
  end

  # utime + stime of the threads of `pid` named `name` (see /proc/PID/task/*/comm).
  def thread_cpu_seconds(pid, name)
    Dir["/proc/#{pid}/task/*"].sum do |task|
      gone_as_zero do
        next 0 unless File.read("#{task}/comm").strip == name

        fields = File.read("#{task}/stat").split(") ", 2).last.split
        (fields[11].to_i + fields[12].to_i) / TICK
      end
    end
  end

  def rss_kib(pid)
    File.read("/proc/#{pid}/status")[/VmRSS:\s+(\d+)/, 1].to_i
  end

  def peak_rss_kib(pid)
    File.read("/proc/#{pid}/status")[/VmHWM:\s+(\d+)/, 1].to_i
  end

  # Runs bench/crates/holdconns processes that together hold `count` connections to
  # `port`, each sending `GET path`, from source addresses 127.0.0.2, .3, … Returns their
  # stdout pipes; see the tool's doc comment for what they print.
  def spawn_loaders(port, count, path, wait_seconds, mode = "poll")
    count.fdiv(PER_LOAD_PROCESS).ceil.times.map do |i|
      share = [PER_LOAD_PROCESS, count - (i * PER_LOAD_PROCESS)].min
      IO.popen([HOLDCONNS, port.to_s, share.to_s, (2 + i).to_s, path, wait_seconds.to_s, mode])
    end
  end

  def kill_loaders(loaders)
    (loaders || []).each do |io|
      next if io.closed?

      Process.kill("KILL", io.pid)
    rescue Errno::ESRCH
      nil
    end
  end

  # The Comet demo's subscriber counts.
  def comet_stats(port)
    JSON.parse(Net::HTTP.get(URI("http://127.0.0.1:#{port}/stats")))
  end

  # Starts `command` (stdout/stderr discarded), waits until it accepts on `port`, yields
  # its pid, and kills it afterwards.
  def with_server(command, port, env: {}, chdir: Dir.pwd)
    pid = Process.spawn(env, *command, out: File::NULL, err: File::NULL, chdir: chdir)
    deadline = Time.now + 20
    begin
      TCPSocket.new("127.0.0.1", port).close
    rescue Errno::ECONNREFUSED
      raise "#{command.first} did not start" if Time.now > deadline || Process.waitpid(pid, Process::WNOHANG)

      sleep 0.05
      retry
    end
    yield pid
  ensure
    if pid
      process_tree(pid).reverse_each { |p| gone_as_zero { Process.kill("KILL", p) } }
      Process.wait(pid)
    end
  end
end
