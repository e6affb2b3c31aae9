# frozen_string_literal: true

module Lunar
  # The exchanges waiting on the app (async responses pending, deferrable bodies
  # streaming), by request id, so that a disconnect notice from the native side can find
  # them. Holds no thread and no socket: only the Ruby objects the app itself keeps alive.
  class AsyncRegistry
    def initialize
      @pending = {}
      @lock = Mutex.new
    end

    def add(exchange)
      @lock.synchronize { @pending[exchange.id] = exchange }
      # The notice may have come before we were registered: look for ourselves.
      exchange.client_gone unless exchange.connection_open?
    end

    def delete(id)
      @lock.synchronize { @pending.delete(id) }
    end

    def [](id)
      @lock.synchronize { @pending[id] }
    end

    def size
      @lock.synchronize { @pending.size }
    end

    # Empties the registry (server stop) and returns what was in it.
    def take_all
      @lock.synchronize do
        all = @pending.values
        @pending = {}
        all
      end
    end
  end
end
