# frozen_string_literal: true

require "socket"
require "tmpdir"

# A real redis-server for the specs, on a free loopback port, with no persistence (a
# restart starts empty, as a crashed Redis without a disk would). Started on first use,
# stopped at exit; `kill` and `start` again make an outage.
class RedisServer
  attr_reader :port

  def self.instance
    @instance ||= new.tap { |server| at_exit { server.kill } }
  end

  def initialize
    @dir = ScratchDirs.for_the_run("lunar-redis")
    @port = TCPServer.open("127.0.0.1", 0) { |s| s.addr[1] }
    @pid = nil
    start
  end

  def url = "redis://127.0.0.1:#{@port}/0"

  def start
    return self if @pid

    @pid = Process.spawn("redis-server", "--port", @port.to_s, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                         "--dir", @dir, out: File::NULL, err: File::NULL)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 10
    until ping?
      raise "redis-server did not start on port #{@port}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

      sleep 0.02
    end
    self
  end

  # An outage: the server dies at once (SIGKILL), connections reset.
  def kill
    return unless @pid

    Process.kill("KILL", @pid)
    Process.wait(@pid)
    @pid = nil
  rescue Errno::ESRCH, Errno::ECHILD
    @pid = nil
  end

  # Runs a command with redis-cli; returns its output.
  def cli(*args)
    IO.popen(["redis-cli", "-p", @port.to_s, *args.map(&:to_s)], &:read)
  end

  private

  def ping?
    TCPSocket.open("127.0.0.1", @port) do |s|
      s.write("PING\r\n")
      s.wait_readable(1) && s.readpartial(64).start_with?("+PONG")
    end
  rescue SystemCallError, IOError
    false
  end
end
