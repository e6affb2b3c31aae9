# frozen_string_literal: true

require "lunar/request/app_errors"

module Lunar
  # EventMachine callbacks remember the request they were scheduled for.
  #
  # A Thin app answers later from `EM.next_tick` or `EM.add_timer` blocks. If such a block
  # raises, Thin's whole process dies; EventMachine's error handler would keep the reactor
  # alive but leave that request's client waiting for nothing. So while Lunar runs the app
  # (or one of these blocks) for a request, the blocks scheduled are wrapped: one that
  # raises fails its own request (a 500 if its head was not sent, else the connection
  # closes) and is logged with its backtrace; the reactor and every other connection carry
  # on. Blocks scheduled outside any request run unwrapped.
  module CallbackAttribution
    CURRENT = :__lunar_exchange # fiber-local: the exchange whose code is running

    module_function

    # Runs the block with `exchange` as the request its scheduled callbacks belong to.
    def within(exchange)
      thread = Thread.current
      previous = thread[CURRENT]
      return yield if previous.equal?(exchange) # nested: nothing to set or restore

      thread[CURRENT] = exchange
      begin
        yield
      ensure
        thread[CURRENT] = previous
      end
    end

    # `callable`, or a wrapper failing the current request if it raises.
    def wrap(callable)
      exchange = Thread.current[CURRENT]
      exchange && callable ? Attributed.new(exchange, callable) : callable
    end

    # A scheduled callback and the request it belongs to. An object rather than a closure:
    # one allocation per `next_tick` or timer instead of a Proc and its captured frame, on
    # the reactor's path for every async response.
    class Attributed
      def initialize(exchange, callable)
        @exchange = exchange
        @callable = callable
      end

      def call(*args)
        CallbackAttribution.within(@exchange) { @callable.call(*args) }
      rescue *APP_ERRORS => e
        @exchange.fail_with(e)
      end
    end

    # Prepended to EventMachine's singleton: the ways Thin apps schedule work.
    # (EventMachine takes any callable where it takes a block.)
    module Hooks
      def next_tick(callable = nil, &block)
        super(CallbackAttribution.wrap(callable || block), &nil)
      end

      def add_timer(interval, callable = nil, &block)
        super(interval, CallbackAttribution.wrap(callable || block), &nil)
      end

      def add_periodic_timer(interval, callable = nil, &block)
        super(interval, CallbackAttribution.wrap(callable || block), &nil)
      end
    end

    def install
      ::EM.singleton_class.prepend(Hooks) unless ::EM.singleton_class.include?(Hooks)
    end
  end
end
