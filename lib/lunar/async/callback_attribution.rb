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

    # EventMachine's error handler, if one is installed (EventMachine has no reader for it;
    # calling EM.error_handler without a block removes it).
    def error_handler = ::EM.instance_variable_get(:@error_handler)

    # `callable`, wrapped: failing the current request if it raises (Attributed), or, outside
    # any request, handing what it raises to EventMachine's error handler (Guarded).
    def wrap(callable)
      return callable unless callable

      exchange = Thread.current[CURRENT]
      exchange ? Attributed.new(exchange, callable) : Guarded.new(callable)
    end

    # A scheduled callback and the request it belongs to. An object rather than a closure:
    # one allocation per `next_tick` or timer instead of a Proc and its captured frame, on
    # the reactor's path for every async response.
    class Attributed
      def initialize(exchange, callable)
        @exchange = exchange
        @callable = callable
      end

      # EventMachine calls what it schedules without arguments: none to gather (an Array per
      # call).
      def call
        CallbackAttribution.within(@exchange) { @callable.call }
      rescue *APP_ERRORS => e
        @exchange.fail_with(e)
      end
    end

    # A callback scheduled outside any request (a Thin app's periodic timer set up at boot).
    # EventMachine hands what a callback raises to its error handler (Lunar's logs it; an app
    # may install its own), but its C side rescues StandardError only: an Exception subclass
    # or `exit` ended the reactor, and every response of the process with it, while the
    # server went on accepting. Those go to the error handler too; with none installed,
    # EventMachine's own rule holds and the reactor stops.
    class Guarded
      def initialize(callable)
        @callable = callable
      end

      def call
        @callable.call
      rescue *APP_ERRORS => e
        handler = !e.is_a?(StandardError) && CallbackAttribution.error_handler
        raise unless handler # StandardError: EventMachine's own rescue hands it over

        handler.call(e)
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
