# frozen_string_literal: true

module Lunar
  # env['async.close'] when EventMachine is not loaded: the callback/errback/succeed/fail
  # semantics of EM::Deferrable, thread-safe. A callback added after `succeed` runs at once.
  class Deferrable
    def initialize
      @lock = Mutex.new
      @status = nil
      @callbacks = []
      @errbacks = []
    end

    def callback(&block)
      add(:succeeded, block) { @callbacks << block }
    end

    def errback(&block)
      add(:failed, block) { @errbacks << block }
    end

    def succeed(*args)
      settle(:succeeded, args)
    end

    def fail(*args)
      settle(:failed, args)
    end

    private

    def add(runs_on, block)
      run_now = @lock.synchronize do
        yield unless @status
        @status == runs_on
      end
      block.call(*@args) if run_now
      self
    end

    def settle(status, args)
      blocks = @lock.synchronize do
        return self if @status

        @status = status
        @args = args
        chosen = status == :succeeded ? @callbacks : @errbacks
        @callbacks = []
        @errbacks = []
        chosen
      end
      blocks.each { |b| b.call(*args) }
      self
    end
  end
end
