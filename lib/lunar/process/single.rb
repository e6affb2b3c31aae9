# frozen_string_literal: true

require "lunar/process/runner"
require "lunar/process/control"
require "lunar/process/stats"

module Lunar
  # Single mode (Puma's Single): one process serving the launcher's sockets. Signals, as
  # Thin and Puma use them:
  # - TERM, QUIT: stop gracefully (in-flight requests and pending async responses get
  #   --shutdown-timeout, then their async.close fires), exit 0;
  # - INT: stop at once (a second INT, if app code still holds the process, exits with 130);
  # - HUP: reopen the log files (stdout_redirect, the access log): logrotate's signal;
  # - USR2 (and USR1, there being no workers to replace one by one): a hot restart, the
  #   process re-executed on the same sockets.
  # Under systemd it reports READY=1 once serving and STOPPING=1 when asked to stop.
  class Single < Runner
    def run
      @server = Server.new(launcher.app, config.merge(launcher.binder.options)).start
      @control = Control.serve(self, config)
      Stats.source = self
      redirect_io
      write_pid
      trap_signals
      say(boot_line)
      ready("Lunar #{VERSION} serving, #{@server.mode}")
      keep_watchdog_fed
      run_hooks(:after_booted)
      @server.wait
      @control&.stop(0)&.wait
      run_hooks(:after_stopped)
      say(restart? ? "Lunar restarting" : "Lunar stopped")
      restart? ? :restart : :stopped
    ensure
      delete_pid
    end

    attr_reader :server

    # Puma's stats for one process (the keys its exporters read), and Lunar's own (Stats).
    def stats
      { started_at: Stats.time(started_at) }.merge(@server.stats)
    end

    def boot_line
      "Lunar #{VERSION} (ruby #{RUBY_VERSION}, rack #{rack_version}) #{@server.mode}, pid #{Process.pid}, " \
        "up to #{@server.max_connections} connections (#{open_files}), listening on #{@server.addresses.join(', ')}" \
        "#{@control ? "; control app on #{@control.addresses.join(', ')}" : ''}"
    end

    # A graceful stop (TERM, the control app's /stop).
    def stop
      @server.stop
      notify("STOPPING=1")
      say("Lunar stopping gracefully (up to #{config[:shutdown_timeout]}s); INT to stop now", trap: true)
    end

    # The control app's /phased-restart: with no workers to replace one by one, a restart (as USR1).
    def phased_restart = restart

    def halt
      @server.halt
      notify("STOPPING=1")
    end

    # A hot restart (USR2, tmp/restart.txt, the control app's /restart): drain, then exec.
    def restart
      restart!
      @server.stop
      notify("RELOADING=1")
      say("Lunar restarting: draining (up to #{config[:shutdown_timeout]}s), then re-executing on the same sockets", trap: true)
    end

    def reopen_logs
      redirect_io if redirected?
      @server.reopen_logs
    end

    private

    # The soft open-file limit, raised to the hard one when the server started.
    def open_files
      before, now = @server.open_files
      before == now ? "open files: #{now}" : "open files raised #{before} → #{now}"
    end

    # WATCHDOG=1 while the server runs (its Ruby side included: a stuck GVL starves this thread).
    def keep_watchdog_fed
      every = watchdog_every or return
      Thread.new do
        while @server.running?
          notify("WATCHDOG=1")
          sleep every
        end
      end
    end

    def trap_signals
      %w[TERM QUIT].each { |signal| Signal.trap(signal) { stop } }
      stopping = false
      Signal.trap("INT") do
        exit!(130) if stopping
        stopping = true
        halt
      end
      Signal.trap("HUP") { reopen_logs }
      %w[USR1 USR2].each { |signal| Signal.trap(signal) { restart } }
    end
  end
end
