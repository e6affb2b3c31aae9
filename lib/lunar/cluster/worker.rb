# frozen_string_literal: true

require "lunar/server"

module Lunar
  class Cluster
    # One forked worker: a whole Lunar (its own tokio runtime, Ruby threads or EventMachine
    # reactor) serving the sockets the master bound. It tells the master it is ready through
    # a pipe, drains on TERM/QUIT, stops at once on INT, and drains by itself when the master
    # goes away (the master-alive pipe reads end-of-file). Never returns: it `exit!`s, so that
    # nothing the master registered (at_exit handlers) runs twice.
    class Worker
      def initialize(index:, app:, load_app:, options:, hooks:, ready:, master_alive:)
        @index = index
        @app = app
        @load_app = load_app
        @options = options
        @hooks = hooks
        @ready = ready
        @master_alive = master_alive
        @server = nil
      end

      def run
        $0 = "lunar worker #{@index}"
        trap_signals
        @hooks[:on_worker_boot].each { |hook| hook.call(@index) }
        @server = Server.new(@app || @load_app.call, @options).start
        @ready.puts("ready #{@server.max_connections} #{@server.mode}")
        @ready.close
        Thread.new { leave_with_master }
        @server.wait
        @hooks[:on_worker_shutdown].each { |hook| hook.call(@index) }
        finish(0)
      rescue SystemExit => e # the app failed to load (reported by the loader)
        finish(e.status)
      rescue Exception => e # rubocop:disable Lint/RescueException -- a worker reports any failure, then exits
        warn "lunar: worker #{@index} (pid #{Process.pid}) failed: #{e.class}: #{e.message}"
        warn(e.backtrace.first(5).map { |l| "\t#{l}" }) if e.backtrace
        finish(1)
      end

      private

      def trap_signals
        %w[TERM QUIT].each { |signal| Signal.trap(signal) { @server ? @server.stop : finish(0) } }
        Signal.trap("INT") { @server ? @server.halt : finish(0) }
        %w[USR1 TTIN TTOU].each { |signal| Signal.trap(signal, "IGNORE") } # the master's signals
      end

      # Blocks until the master's end of the pipe closes: it exited (or was killed).
      def leave_with_master
        @master_alive.read
        @server.stop
      rescue IOError
        nil
      end

      def finish(status)
        $stdout.flush
        $stderr.flush
        exit!(status)
      end
    end
  end
end
