# frozen_string_literal: true

require "lunar/process/log"
require "lunar/process/systemd"

module Lunar
  # What single mode and cluster mode share (Puma's Runner): the pid file, the boot line,
  # stdout/stderr redirection and its reopening on HUP, sd_notify, and the hot restart's
  # request. A runner's `run` returns `:stopped`, or `:restart` when the process is to
  # re-execute itself (USR2, a touched tmp/restart.txt, the control app's /restart).
  class Runner
    attr_reader :launcher, :config, :started_at

    def initialize(launcher)
      @launcher = launcher
      @config = launcher.config
      @started_at = Time.now.utc
      @restart = false
    end

    # A hot restart was asked for: the runner stops (gracefully), then the launcher execs.
    def restart!
      @restart = true
    end

    def restart? = @restart

    # stdout and stderr to the files `stdout_redirect` names (truncated unless appending);
    # called at boot and again on HUP, so logrotate can move the files away.
    def redirect_io
      { $stdout => config[:redirect_stdout], $stderr => config[:redirect_stderr] }.each do |io, path|
        next unless path

        io.reopen(path, config[:redirect_append] ? "a" : "w")
        io.sync = true
      end
    rescue SystemCallError => e
      Log.error("cannot reopen the log files: #{e.message}")
    end

    def redirected? = config[:redirect_stdout] || config[:redirect_stderr]

    def write_pid
      path = config[:pidfile] or return
      File.write(path, "#{Process.pid}\n")
    rescue SystemCallError => e
      Log.error("cannot write the pid file: #{e.message}")
    end

    # Removes the pid file if it is still this process's (a hot restart keeps the pid).
    def delete_pid
      path = config[:pidfile] or return
      File.delete(path) if !restart? && File.exist?(path) && File.read(path).to_i == Process.pid
    rescue SystemCallError
      nil
    end

    # Logs a line; from a signal trap, on a fresh thread (a trap may not take locks).
    def say(line, trap: false)
      return if config[:quiet] && !trap

      trap ? Thread.new { Log.info(line) } : Log.info(line)
    end

    def notify(state) = Systemd.notify(state)

    # READY=1, with a STATUS= line `systemctl status` shows.
    def ready(status) = notify("READY=1\nSTATUS=#{status}")

    # systemd's watchdog (WatchdogSec=): how often to send WATCHDOG=1 (half its interval), or
    # nil when it watches no process here.
    def watchdog_every
      usec = Integer(ENV.fetch("WATCHDOG_USEC", ""), exception: false) or return nil
      watched = ENV.fetch("WATCHDOG_PID", nil)
      return nil if watched && Integer(watched, exception: false) != Process.pid

      usec / 2_000_000.0
    end

    # The Rack the app will run on (a cluster master without preload has not loaded it yet).
    def rack_version
      require "rack"
      ::Rack.release
    rescue LoadError
      "none"
    end

    # The process title: `lunar` (or `lunar worker N`), the tag if one was given.
    def title(role)
      tag = config[:tag]
      $0 = tag ? "#{role} [#{tag}]" : role
    end

    # The control app's /gc-stats, /thread-backtraces and /gc, as Puma answers them.
    def gc_stats = GC.stat

    def thread_backtraces
      Thread.list.map { |t| { name: "Thread: TID-#{t.object_id.to_s(36)} #{t.name}".strip, backtrace: Array(t.backtrace) } }
    end

    def gc = GC.start

    def run_hooks(name, *args)
      config.hooks[name].each do |hook|
        hook.call(*args)
      rescue StandardError, ScriptError => e
        Log.exception("the #{name} hook failed", e)
      end
    end
  end
end
