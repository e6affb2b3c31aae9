# frozen_string_literal: true

require "lunar/async_registry"
require "lunar/parking"

module Lunar
  # What every exchange of one server shares: the registry of pending async responses, the
  # error log, the access log, and the rule for how long a write may wait for a slow client.
  class ServerContext
    attr_reader :registry

    # `reactor`: the Reactor when EventMachine runs (its thread must never wait long);
    # `write_timeout`: seconds a write from that thread may wait for a slow client.
    def initialize(errors: $stderr, access_log: nil, reactor: nil, write_timeout: 1.0)
      @registry = AsyncRegistry.new
      @errors = errors
      @access_log = access_log
      @reactor = reactor
      @write_timeout = write_timeout
      @parking_key = :"lunar_parking_#{object_id}" # per server: servers may share a reactor
      @parkings = []
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

    def log_error(env, message, backtrace = nil)
      out = (env && env["rack.errors"]) || @errors
      where = env ? " #{env['REQUEST_METHOD']} #{env['REQUEST_URI']}" : ""
      out.puts("lunar: error in app#{where}: #{message}")
      out.puts(backtrace.map { |line| "\t#{line}" }) if backtrace
      out.flush if out.respond_to?(:flush)
    rescue StandardError
      nil
    end

    # After every response: the access log line, then rack.response_finished callables in
    # reverse order (also after errors); one failing callable does not stop the others.
    def finished(env, status, headers, error)
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
