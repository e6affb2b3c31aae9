# frozen_string_literal: true

require "lunar/request/app_errors"
require "lunar/request/rack_env"
require "lunar/request/exchange"
require "lunar/async/async_callback"
require "lunar/async/callback_attribution"

module Lunar
  # Runs the app for one native request on the current Ruby thread, the way Thin does:
  # `catch(:async)` around `app.call`, a `-1` status or `throw :async` meaning "the answer
  # comes later through env['async.callback']". Exceptions never escape to kill the thread.
  #
  # Without the async protocol (threaded mode, no EventMachine) the common answer, an Array
  # body, goes out in one native call with no Exchange: that path is measured per µs.
  #
  # Thin's per-request deferral: in evented mode, a request for which the app answers
  # `deferred?(env)` true runs on EventMachine's thread pool (`EM.defer`), with
  # `rack.multithread` true for it, while the reactor serves the others.
  class AppRunner
    ASYNC_RESPONSE = [-1, {}.freeze, [].freeze].freeze
    ASYNC_CALLBACK = "async.callback"
    RACK_MULTITHREAD = "rack.multithread"
    ASYNC_OFF = "async response (-1 / throw :async) but the async protocol is off: run lunar --evented or " \
                "--async (rackup -O async, LUNAR_ASYNC=1 under rails server), or load EventMachine"

    def initialize(app, rack_env, context, async:, defer: nil)
      @app = app
      @rack_env = rack_env
      @context = context
      @async = async
      @timed = context.timed?
      @defer = defer if app.respond_to?(:deferred?)
    end

    # An event from the native queue: a request, the id of a request whose connection
    # ended before its response, or [id, message] from a native WebSocket's client.
    def dispatch(event)
      case event
      when Integer then closed(event)
      when Array then message(*event)
      else call(event)
      end
    rescue *APP_ERRORS => e
      unanswered(event, e)
    end

    def call(request)
      env = @rack_env.for(request)
      env[AccessLog::STARTED] = Process.clock_gettime(Process::CLOCK_MONOTONIC) if @timed
      return deferred(request, env) if @defer && @app.deferred?(env)

      @async ? call_async(request, env) : call_sync(request, env)
    rescue *APP_ERRORS => e
      fail_before_env(request, e)
    end

    def closed(id)
      exchange = @context.registry.delete(id)
      exchange && @context.schedule { exchange.client_gone }
    end

    def message(id, data)
      exchange = @context.registry[id]
      exchange && @context.schedule { exchange.receive(data) }
    end

    private

    def deferred(request, env)
      env[RACK_MULTITHREAD] = true
      @defer.call { @async ? call_async(request, env) : call_sync(request, env) }
    end

    def call_async(request, env)
      exchange = Exchange.new(request, env, @context)
      env[ASYNC_CALLBACK] = AsyncCallback.new(exchange)
      guarded(exchange) do
        result = ASYNC_RESPONSE
        CallbackAttribution.within(exchange) { catch(:async) { result = @app.call(env) } }
        handle_result(exchange, result)
      end
    end

    def call_sync(request, env)
      answered = false
      # Caught even with the protocol off: an uncaught throw would raise at the throw site,
      # inside the app, whose own rescue would answer with no word of why.
      result = ASYNC_RESPONSE
      catch(:async) { result = @app.call(env) }
      status, headers, body = result
      answered = true # here, or by the Exchange
      # respond is nil when the body does not fit its connection's budget: the Exchange streams it.
      if body.instance_of?(Array) && result.instance_of?(Array) && (status = status.to_i) != -1 && !RackEnv.hijacking?(env, headers) &&
         !request.respond(status, headers, body).nil?
        @context.finished(env, status, headers, nil, @timed ? body.sum(&:bytesize) : nil)
      else
        through_exchange(request, env, result)
      end
    rescue *APP_ERRORS => e
      answered = true
      Exchange.new(request, env, @context).fail_with(e)
    ensure
      # The thread is being killed inside the app: answer, never leave the client hanging.
      Exchange.new(request, env, @context).abandon unless answered
    end

    def through_exchange(request, env, result)
      exchange = Exchange.new(request, env, @context)
      guarded(exchange) { handle_result(exchange, result) }
    end

    # Runs the block for `exchange`: an error fails it (500, or a close), and a thread killed
    # inside leaves it answered (503), never hanging.
    def guarded(exchange)
      yield
    rescue *APP_ERRORS => e
      exchange.fail_with(e)
    ensure
      exchange.abandon unless exchange.settled?
    end

    # The env could not be built (no Exchange yet): still answer, never leave it hanging.
    def fail_before_env(request, error)
      @context.log_exception(nil, error, "building the env:")
      request.respond(500, ServerContext::ERROR_HEADERS, ServerContext::ERROR_BODY) unless request.answered?
    end

    # What the error path itself could not answer: an error whose #message or #backtrace
    # raises again (each time it is asked), or a fault in Lunar. Logged without asking the
    # error more than it can tell, the request answered 500, and the thread goes on: one
    # dead worker less is, with `-t 1`, a server that answers nothing.
    def unanswered(event, error)
      Log.exception("answering an error failed (the error raises when described, or Lunar has a bug)", error)
      return if event.is_a?(Integer) || event.is_a?(Array) || event.answered?

      event.respond(500, ServerContext::ERROR_HEADERS, ServerContext::ERROR_BODY)
    rescue *APP_ERRORS => e
      Log.exception("answering an error failed twice", e)
    end

    def handle_result(exchange, result)
      return exchange.finish if exchange.hijacked? # whatever it returned, the connection is the app's

      if result.nil?
        @context.log_error(exchange.env, "app returned nil: closing the connection")
        return exchange.close_connection
      end
      status, headers, body = result.to_a
      return exchange.respond(status, headers, body) unless status.to_i == -1
      return exchange.pend if @async

      exchange.fail_with(RuntimeError.new(ASYNC_OFF))
    end
  end
end
