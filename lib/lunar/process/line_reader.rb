# frozen_string_literal: true

module Lunar
  # The lines a process writes to a pipe or socket of the master's (a worker's reports, the
  # control process's questions), read without blocking: whole lines as they complete.
  class LineReader
    def initialize(io)
      @io = io
      @buffer = +""
    end

    # Yields each line that is complete now (without its newline); false once the other
    # end has closed, true otherwise.
    def each_line
      chunk = @io.read_nonblock(65_536, exception: false)
      return false if chunk.nil?
      return true if chunk == :wait_readable

      @buffer << chunk
      while (line = @buffer.slice!(/\A[^\n]*\n/))
        yield line.chomp
      end
      true
    end
  end
end
