# frozen_string_literal: true

module Lunar
  # env['async.callback']: takes one Rack response, from any Ruby thread, and hands it to
  # the connection at once. The first response wins; `[-1, …]` does nothing; `nil` closes
  # the connection.
  class AsyncCallback
    attr_reader :exchange # for Lunar::Topic

    def initialize(exchange)
      @exchange = exchange
    end

    def call(response)
      @exchange.respond_async(response)
      nil
    end
    alias [] call

    def to_proc
      method(:call).to_proc
    end
  end
end
