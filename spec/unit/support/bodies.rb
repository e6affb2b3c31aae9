# frozen_string_literal: true

require "lunar/async/deferrable"

# A body that records what was asked of it.
class RecordingBody
  attr_reader :calls

  def initialize(*chunks)
    @chunks = chunks
    @calls = []
  end

  def each(&)
    @calls << :each
    @chunks.each(&)
  end

  def close = @calls << :close
end

# A deferrable body as the seed writes it: `each` keeps the block, `call` feeds it.
class LaterBody < Lunar::Deferrable
  attr_reader :closed

  def each(&block) = @block = block
  def call(chunk) = @block.call(chunk)
  def close = @closed = true
end
