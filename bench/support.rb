# frozen_string_literal: true

require "etc"
require "socket"

# What every benchmark script needs: ports, server processes, and their CPU and memory as
# /proc reports them.
module BenchSupport
  TICK = Etc.sysconf(Etc::SC_CLK_TCK).to_f

  module_function

  def free_port
    TCPServer.open("127.0.0.1", 0) { |s| s.addr[1] }
  end

  # utime + stime of every thread of `pid`, in seconds.
  def cpu_seconds(pid)
    fields = File.read("/proc/#{pid}/stat").split(") ", 2).last.split
    (fields[11].to_i + fields[12].to_i) / TICK
  end

  def rss_kib(pid)
    File.read("/proc/#{pid}/status")[/VmRSS:\s+(\d+)/, 1].to_i
  end

  def peak_rss_kib(pid)
    File.read("/proc/#{pid}/status")[/VmHWM:\s+(\d+)/, 1].to_i
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
      Process.kill("KILL", pid)
      Process.wait(pid)
    end
  end
end
