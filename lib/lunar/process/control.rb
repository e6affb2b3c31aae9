# frozen_string_literal: true

require "json"
require "socket"
require "lunar/process/control_app"
require "lunar/process/line_reader"
require "lunar/process/log"

module Lunar
  # Where the control app (ControlApp) is served from: `--control-url` / `activate_control_app`.
  #
  # - Single mode: a second, small Server in the process, the runner itself the target.
  # - Cluster mode: the master runs no server (it starts no runtime and no thread, so that it
  #   can fork safely), so a control process is forked beside the workers. It serves the
  #   control app and asks the master for everything over a socket pair, one JSON line each
  #   way (`Control::Link`); the master answers in its watch loop (`Control::Desk`).
  module Control
    # The control server's own size: a few operators and scrapers, never app traffic.
    SERVER_OPTIONS = { threads: 2, mode: :threaded, io_threads: 1, max_conns: 64 }.freeze

    module_function

    # Starts the control app on `config[:control_url]` for `target`; nil when none is asked for.
    def serve(target, config)
      url = config[:control_url] or return nil
      token = config[:control_token]
      raise Options::Invalid, "--control-url needs --control-token TOKEN (or `none`, for no token)" if token.to_s.empty?

      Server.new(ControlApp.new(target, token: token), SERVER_OPTIONS.merge(bind: [url])).start
    end

    # The control process's end: each of ControlApp's questions sent to the master, and its
    # answer awaited (one at a time; the master answers within a turn of its loop).
    class Link
      ANSWER_WITHIN = 10

      def initialize(socket)
        @socket = socket
        @lock = Mutex.new
      end

      ControlApp::QUESTIONS.each do |question|
        define_method(question) { ask(question) }
      end

      private

      def ask(question)
        @lock.synchronize do
          @socket.write("#{question}\n")
          raise IOError, "the master did not answer #{question} within #{ANSWER_WITHIN}s" unless @socket.wait_readable(ANSWER_WITHIN)

          line = @socket.gets or raise IOError, "the master is gone"
          JSON.parse(line, symbolize_names: true)
        end
      end
    end

    # The master's end: reads the control process's questions and answers each from `runner`.
    class Desk
      QUESTIONS = ControlApp::QUESTIONS.map(&:to_s).freeze

      attr_reader :socket

      def initialize(socket, runner)
        @socket = socket
        @runner = runner
        @lines = LineReader.new(socket)
      end

      # Answers every whole question waiting (the control process's exit is reaped apart).
      def answer
        @lines.each_line do |question|
          reply = QUESTIONS.include?(question) ? @runner.public_send(question) : { error: "unknown question" }
          @socket.write("#{JSON.generate(reply.is_a?(Hash) || reply.is_a?(Array) ? reply : { status: 'ok' })}\n")
        end
      rescue IOError, SystemCallError
        nil
      end
    end

    # Forks the control process of a cluster; returns [pid, Desk]. `closing`: the master's
    # descriptors the child must not keep open.
    def fork_process(runner, config, alive:, closing:)
      mine, theirs = UNIXSocket.pair
      pid = fork do
        Cluster::SIGNALS.each { |signal| Signal.trap(signal, "DEFAULT") }
        [mine, *closing].each { |io| io.close unless io.closed? }
        run_process(theirs, config, alive)
      end
      theirs.close
      [pid, Desk.new(mine, runner)]
    end

    # The control process: serves until TERM or the master goes away.
    def run_process(socket, config, alive)
      $0 = "lunar control"
      server = serve(Link.new(socket), config)
      %w[TERM QUIT INT].each { |signal| Signal.trap(signal) { server.stop(0) } }
      Thread.new { alive.read && server.stop(0) }
      Log.info("control app listening on #{server.addresses.join(', ')}") unless config[:quiet]
      server.wait
      exit!(0)
    rescue StandardError => e
      Log.error("the control app cannot start: #{e.message}")
      exit!(2)
    end
  end
end
