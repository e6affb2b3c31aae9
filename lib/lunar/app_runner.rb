# frozen_string_literal: true

require "lunar/rack_env"
require "lunar/exchange"
require "lunar/async_callback"

module Lunar
  # Runs the app for one native request on the current Ruby thread, the way Thin does:
  # `catch(:async)` around `app.call`, a `-1` status or `throw :async` meaning "the answer
  # comes later through env['async.callback']". Exceptions never escape to kill the thread.
  class AppRunner
    ASYNC_RESPONSE = [-1, {}.freeze, [].freeze].freeze
    ASYNC_CALLBACK = "async.callback"

    def initialize(app, rack_env, context, async:)
      @app = app
      @rack_env = rack_env
      @context = context
      @async = async
    end

    # An event from the native queue: a request, or the id of a request whose connection
    # ended before its response.
    def dispatch(event)
      event.is_a?(Integer) ? closed(event) : call(event)
    end

    def call(request)
      env = @rack_env.for(request)
      exchange = Exchange.new(request, env, @context)
      env[ASYNC_CALLBACK] = AsyncCallback.new(exchange) if @async
      result = ASYNC_RESPONSE
      catch(:async) { result = @app.call(env) }
      handle_result(exchange, result)
    rescue StandardError, ScriptError, SystemStackError, NoMemoryError => e
      exchange ? exchange.fail_with(e) : fail_before_env(request, e)
    ensure
      exchange.abandon if exchange && !exchange.settled?
    end

    def closed(id)
      exchange = @context.registry.delete(id)
      exchange && @context.schedule { exchange.client_gone }
    end

    private

    # The env could not be built (no Exchange yet): still answer, never leave it hanging.
    def fail_before_env(request, error)
      @context.log_error(nil, "building the env: #{error.class}: #{error.message}", error.backtrace)
      request.respond(500, Exchange::ERROR_HEADERS, Exchange::ERROR_BODY)
    end

    def handle_result(exchange, result)
      if result.nil?
        @context.log_error(exchange.env, "app returned nil: closing the connection")
        return exchange.close_connection
      end
      status, headers, body = result.to_a
      return exchange.respond(status, headers, body) unless status.to_i == -1
      return exchange.pend if @async

      exchange.fail_with(RuntimeError.new("async response (-1 / throw :async) but the async protocol is off: " \
                                          "run lunar --evented, or load EventMachine"))
    end
  end
end
