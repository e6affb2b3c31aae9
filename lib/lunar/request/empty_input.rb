# frozen_string_literal: true

module Lunar
  # rack.input for a request without a body: one shared, stateless object (always at its
  # end, nothing to close), because a StringIO per bodiless GET cost more than the rest of
  # the env. Implements what Rack 2.2 and 3.x Lint ask of an input, and what else apps call
  # on Puma's (NullIO) and Thin's (StringIO) empty inputs: `eof?`, `pos`, `seek`,
  # `readpartial`, `binmode`, `string`.
  module EmptyInput
    module_function

    def read(length = nil, buffer = nil)
      buffer&.clear
      return nil if length&.positive?

      buffer || String.new(encoding: Encoding::BINARY)
    end

    def gets(*)
      nil
    end

    def each
      self
    end

    def rewind
      0
    end

    def size
      0
    end

    def close
      nil
    end

    def external_encoding
      Encoding::BINARY
    end

    def binmode?
      true
    end

    def binmode
      self
    end

    def eof?
      true
    end

    def eof
      true
    end

    def pos
      0
    end

    def tell
      0
    end

    def seek(_offset, _whence = IO::SEEK_SET)
      0
    end

    # At its end, as IO#readpartial is there.
    def readpartial(_length, _buffer = nil)
      raise EOFError, "end of file reached"
    end

    def closed?
      false
    end

    def string
      ""
    end

    def set_encoding(*)
      self
    end
  end
end
