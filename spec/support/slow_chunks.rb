# frozen_string_literal: true

# A body of `chunks` chunks of 64 KiB from `each`: enough to fill a slow client's buffer.
SlowChunks = Struct.new(:chunks) do
  self::CHUNK = ("x" * 65_536).freeze

  def each
    chunks.times { yield self.class::CHUNK }
  end
end
