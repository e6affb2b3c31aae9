# frozen_string_literal: true

require "fileutils"

require "rbconfig"
require "lunar/process/binder"
require "lunar/process/log"

module Lunar
  # Starts Lunar the way every entry point does (`lunar`, `rackup -s lunar`, `rails server
  # -u lunar`, Sinatra's `run!`), as Puma's Launcher: it prepares the process (directory,
  # RACK_ENV, load path, requires, logging), loads the app (unless each worker loads its
  # own), binds the sockets (or takes systemd's, or a restarted process's), and runs single
  # mode or cluster mode on them; on a hot restart it re-executes the same command on the
  # same sockets.
  class Launcher
    attr_reader :config, :binder, :runner

    # `config`: the layered settings; `app`: the Rack app when the caller already has it (the
    # Rack handler), else it is loaded from `config[:rackup]` (in the master first with
    # `preload_app`, else in each worker); `argv`: the command to re-execute on a restart.
    def initialize(config, app: nil, argv: [$PROGRAM_NAME, *ARGV])
      @config = config
      @app = app
      @argv = argv.dup
    end

    # Runs until stopped; returns the exit status (or does not return: a hot restart execs).
    def run
      prepare
      # The app before the sockets, as Puma loads it: a port that accepts can answer at once
      # (a readiness check that connects means it), and an app that fails to load never
      # opens one. A restarted process's inherited sockets queue connections meanwhile.
      @app ||= load_app if config[:workers].zero? || config[:preload_app]
      warn_of_rails_on_the_reactor if @app
      @binder = Binder.new(config.binds, explicit: config.explicit_binds?).listen!
      @runner = config[:workers].positive? ? Cluster.new(self) : Single.new(self)
      watch_restart_file if config.plugins.include?(:tmp_restart)
      result = @runner.run
      restart if result == :restart
      @binder.remove_socket_files
      result == :failed ? 1 : 0
    end

    # The app, loaded on first use (a worker without preload loads its own).
    def app
      @app ||= load_app
    end

    # A Rails app in evented mode only because some gem loaded EventMachine runs one request
    # at a time on the reactor, as under `thin start`, where under Puma it had a pool of
    # threads: one slow request, or an ActionController::Live stream (whose body waits on a
    # queue), holds every other. Said once, where the app was loaded; chosen on purpose
    # (`--evented`, `evented`), it is not.
    def warn_of_rails_on_the_reactor
      return if config[:mode] || config.mode != :evented || !(defined?(::Rails) && ::Rails.respond_to?(:application) && ::Rails.application)

      Log.warn(RAILS_ON_THE_REACTOR)
    end

    RAILS_ON_THE_REACTOR = "evented mode, because EventMachine is loaded: this Rails app runs on the reactor thread, one " \
                           "request at a time, as under `thin start` (a slow request or an ActionController::Live stream " \
                           "holds all the others); `threaded` in config/lunar.rb (or --threaded) runs it on a pool of " \
                           "threads as under Puma, EventMachine's reactor beside it"

    # A graceful stop, and one at once (the Rack handler's `stop` and rackup's INT).
    def stop = @runner&.stop
    def halt = @runner.is_a?(Cluster) ? @runner.stop(:now) : @runner&.halt

    private

    def prepare
      Dir.chdir(config[:directory]) if config[:directory]
      ENV["RACK_ENV"] = config[:environment]
      $LOAD_PATH.unshift(*config[:include].flat_map { |dir| dir.split(":") })
      config[:require].each { |lib| require lib }
      Log.configure(format: config[:log_format], level: config[:log_level])
    end

    def load_app
      require "rack"
      # As `thin start` does: EventMachine is loaded before the app, so config.ru can use it.
      require "eventmachine" if config[:eventmachine] || config[:mode] == :evented
      path = File.expand_path(config[:rackup])
      app = ::Rack::Builder.parse_file(path)
      app.is_a?(Array) ? app.first : app # Rack 2 returns [app, options]
    rescue Exception => e # rubocop:disable Lint/RescueException -- report any load failure, then exit
      Log.exception("error loading #{config[:rackup]}", e)
      Log.error(EM_HINT) if e.is_a?(NameError) && e.message.match?(/\b(EventMachine|EM)\b/)
      exit 1
    end

    EM_HINT = "this app uses EventMachine without requiring it; run `lunar --evented` (the app on the " \
              "reactor) or `lunar --threaded --eventmachine` (thin start --threaded), which load it before the app"

    # Puma's `plugin :tmp_restart`: touching tmp/restart.txt (`rails restart`) restarts.
    def watch_restart_file
      path = File.expand_path("tmp/restart.txt")
      FileUtils.mkdir_p(File.dirname(path)) # as Puma's plugin: tmp/ need not exist yet
      File.write(path, "") unless File.exist?(path)
      since = File.mtime(path)
      Thread.new do
        sleep 0.5 until File.exist?(path) && File.mtime(path) > since
        Process.kill("USR2", Process.pid)
      end
    rescue SystemCallError => e
      Log.warn("plugin :tmp_restart is off: #{e.message}")
    end

    # A hot restart: the same command, re-executed in this process (same pid), serving the
    # same listening sockets (passed as systemd passes them: LISTEN_FDS from descriptor 3).
    def restart
      @runner.run_hooks(:before_restart, self)
      fds = @binder.listen_fds.values.uniq
      env = { "LISTEN_PID" => Process.pid.to_s, "LISTEN_FDS" => fds.size.to_s }
      redirects = fds.each_with_index.to_h { |fd, i| [Systemd::FIRST_FD + i, IO.for_fd(fd, autoclose: false)] }
      $stdout.flush
      $stderr.flush
      Process.exec(env, RbConfig.ruby, *@argv, **redirects)
    end
  end
end
