# frozen_string_literal: true

require "lunar/rack_env"
require "lunar/response_writer"

module Lunar
  # Runs the app for one native request on the current Ruby thread: env in, response out.
  # An exception in the app is a 500 (or a closed connection once the head has gone), is
  # logged with its backtrace, and never escapes to kill the thread.
  class AppRunner
    SERVER_ERROR_HEADERS = { "content-type" => "text/plain" }.freeze
    SERVER_ERROR_BODY = ["Internal Server Error\n"].freeze
    UNAVAILABLE_BODY = ["Service Unavailable\n"].freeze

    def initialize(app, rack_env, errors: $stderr, access_log: nil)
      @app = app
      @rack_env = rack_env
      @errors = errors
      @access_log = access_log
    end

    def call(request)
      env = @rack_env.for(request)
      status, headers, body = result = @app.call(env)
      if result.nil?
        log_error(env, "app returned nil: closing the connection")
        request.close_connection
      else
        ResponseWriter.write(request, env, status, headers, body)
      end
    rescue StandardError, ScriptError, SystemStackError, NoMemoryError => e
      error = e
      report(request, env, e)
    ensure
      # Reached unanswered only when the thread is being killed: answer rather than hang.
      request.respond(503, SERVER_ERROR_HEADERS, UNAVAILABLE_BODY) unless request.answered?
      finish(env, status, headers, error) if env
    end

    private

    def report(request, env, error)
      log_error(env, "#{error.class}: #{error.message}", error.backtrace)
      request.respond(500, SERVER_ERROR_HEADERS, SERVER_ERROR_BODY) unless request.answered?
    end

    def log_error(env, message, backtrace = nil)
      out = (env && env["rack.errors"]) || @errors
      path = env ? " #{env['REQUEST_METHOD']} #{env['REQUEST_URI']}" : ""
      out.puts("lunar: error in app#{path}: #{message}")
      out.puts(backtrace.map { |line| "\t#{line}" }) if backtrace
      out.flush if out.respond_to?(:flush)
    rescue StandardError
      nil
    end

    # rack.response_finished callables run after every response, in reverse order, even
    # after errors; one failing callable does not stop the others.
    def finish(env, status, headers, error)
      @access_log&.log(env, status)
      callbacks = env["rack.response_finished"]
      return if callbacks.nil? || callbacks.empty?

      callbacks.reverse_each do |callable|
        callable.call(env, status, headers, error)
      rescue StandardError => e
        log_error(env, "rack.response_finished callback failed: #{e.class}: #{e.message}", e.backtrace)
      end
    end
  end
end
