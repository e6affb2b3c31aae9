# frozen_string_literal: true

require "lunar/systemd"

module Lunar
  # Runs a server in the foreground the way `lunar` does: boot line, pid file, signals, as
  # Thin: TERM and QUIT stop gracefully (in-flight requests and pending async responses get
  # --shutdown-timeout, then their async.close fires); INT stops at once (a second INT, if
  # app code still holds the process, exits on the spot with 130). Under systemd it reports
  # READY=1 once serving and STOPPING=1 when asked to stop.
  class Launcher
    def initialize(server, pid_file: nil, quiet: false, out: $stdout)
      @server = server
      @pid_file = pid_file
      @quiet = quiet
      @out = out
    end

    def run
      @server.start
      write_pid
      trap_signals
      @out.puts(boot_line) unless @quiet
      @out.flush
      Systemd.notify("READY=1")
      @server.wait
      @out.puts("Lunar stopped") unless @quiet
    ensure
      File.delete(@pid_file) if @pid_file && File.exist?(@pid_file)
    end

    def boot_line
      rack = defined?(::Rack.release) ? ::Rack.release : "none"
      "Lunar #{VERSION} (ruby #{RUBY_VERSION}, rack #{rack}) #{@server.mode}, pid #{Process.pid}, " \
        "up to #{@server.max_connections} connections (#{open_files}), listening on #{@server.addresses.join(', ')}"
    end

    private

    # The soft open-file limit, raised to the hard one when the server started.
    def open_files
      before, now = @server.open_files
      before == now ? "open files: #{now}" : "open files raised #{before} → #{now}"
    end

    def write_pid
      File.write(@pid_file, "#{Process.pid}\n") if @pid_file
    end

    def trap_signals
      %w[TERM QUIT].each do |signal|
        Signal.trap(signal) do
          @server.stop
          Systemd.notify("STOPPING=1")
          say("Lunar stopping gracefully (up to #{@server.config[:shutdown_timeout]}s); INT to stop now")
        end
      end
      stopping = false
      Signal.trap("INT") do
        exit!(130) if stopping
        stopping = true
        @server.halt
        Systemd.notify("STOPPING=1")
      end
    end

    # A trap may not take locks; a fresh thread may.
    def say(line)
      return if @quiet

      Thread.new do
        @out.puts(line)
        @out.flush
      end
    end
  end
end
