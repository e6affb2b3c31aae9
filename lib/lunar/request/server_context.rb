# frozen_string_literal: true

require "lunar/async/async_registry"
require "lunar/request/app_errors"
require "lunar/request/parking"

module Lunar
  # What every exchange of one server shares: the registry of pending async responses, the
  # error log and the answer to an error, the access log, and the rule for how long a write
  # may wait for a slow client.
  class ServerContext
    ERROR_HEADERS = { "content-type" => "text/plain" }.freeze
    ERROR_BODY = ["Internal Server Error\n"].freeze
    RACK_AFTER_REPLY = "rack.after_reply"
    RACK_RESPONSE_FINISHED = "rack.response_finished"

    attr_reader :registry, :access_log

    # `reactor`: the Reactor when EventMachine runs (its thread must never wait long);
    # `write_timeout`: seconds a write from that thread may wait for a slow client;
    # `error_handler`: Puma's `lowlevel_error_handler`; `environment`: in development and
    # test an error's answer shows the exception and its backtrace, as Puma's does.
    def initialize(errors: nil, access_log: nil, reactor: nil, write_timeout: 1.0, error_handler: nil, environment: ENV.fetch("RACK_ENV", nil))
      @registry = AsyncRegistry.new
      @errors = errors
      @access_log = access_log
      @reactor = reactor
      @write_timeout = write_timeout
      @error_handler = error_handler
      @show_errors = environment.nil? || environment.to_s.match?(/\A(development|test)\z/)
      @parking_key = :"lunar_parking_#{object_id}" # per server: servers may share a reactor
      @parkings = []
    end

    # Whether responses are timed (for the access log).
    def timed? = !@access_log.nil?

    # The answer to an exception that escaped the app: what `lowlevel_error_handler` returns
    # (called as Puma calls it: with the exception, the env and the status, as many as it
    # takes), else a 500 that shows the exception in development and test.
    def error_response(env, error, status = 500)
      return handled(env, error, status) if @error_handler

      body = @show_errors ? ["Lunar caught this error: #{Log.message_of(error)} (#{error.class})\n#{Log.backtrace_of(error).join("\n")}\n"] : ERROR_BODY
      [status, ERROR_HEADERS, body]
    end

    # nil (wait as long as the client is there) on worker threads; a bound on the reactor.
    def write_wait
      @reactor&.thread.equal?(Thread.current) ? @write_timeout : nil
    end

    # This thread's Parking (a worker's, or the reactor's in evented mode), or nil.
    def parking
      Thread.current.thread_variable_get(@parking_key)
    end

    # Gives the calling thread a Parking for streamed bodies (see Parking).
    def park_here(native)
      parking = Parking.new(native, @write_timeout)
      Thread.current.thread_variable_set(@parking_key, parking)
      @parkings << parking
      parking
    end

    # Streamed bodies parked now, waiting for their slow clients.
    def parked
      @parkings.sum(&:parked)
    end

    # Runs `block` where app callbacks belong: on the reactor when there is one.
    def schedule(&block)
      @reactor ? @reactor.schedule(&block) : block.call
    end

    # An error in app code: to the app's `rack.errors` when it set its own (as Rack has it),
    # else through Lunar's log (text or JSON).
    def log_error(env, message, backtrace = nil)
      where = env ? " #{env['REQUEST_METHOD']} #{env['REQUEST_URI']}" : ""
      out = @errors || (env && env["rack.errors"])
      return Log.error("error in app#{where}: #{message}", **(backtrace ? { backtrace: backtrace } : {})) if out.nil? || out.equal?($stderr)

      out.puts("lunar: error in app#{where}: #{message}")
      out.puts(backtrace.map { |line| "\t#{line}" }) if backtrace
      out.flush if out.respond_to?(:flush)
    rescue StandardError
      nil
    end

    # An exception from app code, logged as log_error does, `doing` first when given. Asks
    # the error only what it can answer (Log.describe).
    def log_exception(env, error, doing = nil)
      log_error(env, [doing, Log.describe(error)].compact.join(" "), Log.backtrace_of(error))
    end

    # After every response: the access log line, then Puma's rack.after_reply callables in
    # order, with no arguments (as Puma 6 runs them, before Rack 3's), then
    # rack.response_finished ones in reverse order (also after errors: with the error, and
    # nil for status and headers, as Rack's SPEC allows). One failing callable does not stop
    # the others.
    def finished(env, status, headers, error, bytes = nil)
      @access_log&.log(env, status, bytes)
      after_reply = env[RACK_AFTER_REPLY]
      run_after_reply(env, after_reply) if after_reply.is_a?(Array) && !after_reply.empty? # an app may have replaced it
      callbacks = env[RACK_RESPONSE_FINISHED]
      return if callbacks.nil? || callbacks.empty?

      status = headers = nil if error
      callbacks.reverse_each do |callable|
        callable.call(env, status, headers, error)
      rescue *APP_ERRORS => e
        log_exception(env, e, "rack.response_finished callback failed:")
      end
    end

    private

    def run_after_reply(env, callables)
      callables.each do |callable|
        callable.call
      rescue *APP_ERRORS => e
        log_exception(env, e, "rack.after_reply callback failed:")
      end
    end

    def handled(env, error, status)
      handler = @error_handler
      case handler.is_a?(Proc) ? handler.arity : handler.method(:call).arity
      when 1 then handler.call(error)
      when 2 then handler.call(error, env)
      else handler.call(error, env, status)
      end
    rescue *APP_ERRORS => e
      log_exception(env, e, "lowlevel_error_handler raised")
      [status, ERROR_HEADERS, ERROR_BODY]
    end
  end
end
