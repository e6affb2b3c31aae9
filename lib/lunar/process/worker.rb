# frozen_string_literal: true

require "json"
require "lunar/process/log"
require "lunar/process/stats"

module Lunar
  # One forked worker of a cluster: a whole Lunar (its own tokio runtime, Ruby threads or
  # EventMachine reactor) serving the sockets the launcher bound. It tells the master it
  # booted, then reports its server's stats every `worker_check_interval` over its pipe (the
  # master replaces a worker that stops reporting); it drains on TERM/QUIT, stops at once on
  # INT, reopens its logs on HUP, and drains by itself when the master goes away (the
  # master-alive pipe reads end-of-file). Never returns: it `exit!`s, so that nothing the
  # master registered (at_exit handlers) runs twice.
  class Worker
    def initialize(launcher, index:, pipe:, master_alive:)
      @launcher = launcher
      @config = launcher.config
      @index = index
      @pipe = pipe
      @master_alive = master_alive
      @server = nil
    end

    def run
      tag = @config[:tag]
      $0 = tag ? "lunar worker #{@index} [#{tag}]" : "lunar worker #{@index}"
      trap_signals
      run_hooks(:before_worker_boot)
      app = @launcher.app
      @launcher.warn_of_rails_on_the_reactor if @index.zero? && !@config[:preload_app] # the master did not load it
      @server = Server.new(app, @config.merge(@launcher.binder.options.merge(cluster_worker: true))).start
      Stats.source = self
      tell("booted #{@server.max_connections} #{@server.mode}")
      Thread.new { report }
      Thread.new { leave_with_master }
      @server.wait
      run_hooks(:before_worker_shutdown)
      finish(0)
    rescue SystemExit => e # the app failed to load (reported by the loader)
      finish(e.status)
    rescue Exception => e # rubocop:disable Lint/RescueException -- a worker reports any failure, then exits
      Log.exception("worker #{@index} (pid #{Process.pid}) failed", e)
      finish(1)
    end

    # This worker's own stats (what `Lunar.stats` gives in a worker), as it reports them.
    def stats = @server.stats

    private

    def trap_signals
      %w[TERM QUIT].each { |signal| Signal.trap(signal) { @server ? @server.stop : finish(0) } }
      Signal.trap("INT") { @server ? @server.halt : finish(0) }
      Signal.trap("HUP") { reopen_logs }
      %w[USR1 USR2 TTIN TTOU].each { |signal| Signal.trap(signal, "IGNORE") } # the master's signals
    end

    # The stats the master shows for this worker, every worker_check_interval.
    def report
      loop do
        tell("status #{JSON.generate(@server.stats)}")
        sleep @config[:worker_check_interval]
      end
    rescue IOError, SystemCallError
      nil # the master is gone
    end

    def tell(line)
      @pipe.write("#{line}\n")
    end

    def reopen_logs
      { $stdout => @config[:redirect_stdout], $stderr => @config[:redirect_stderr] }.each do |io, path|
        io.reopen(path, @config[:redirect_append] ? "a" : "w") if path
      end
      @server&.reopen_logs
    end

    # Blocks until the master's end of the pipe closes: it exited (or was killed).
    def leave_with_master
      @master_alive.read
      @server.stop
    rescue IOError
      nil
    end

    def run_hooks(name)
      @config.hooks[name].each do |hook|
        hook.call(@index)
      rescue StandardError, ScriptError => e
        Log.exception("the #{name} hook failed", e)
      end
    end

    def finish(status)
      $stdout.flush
      $stderr.flush
      exit!(status)
    end
  end
end
