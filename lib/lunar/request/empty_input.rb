# frozen_string_literal: true

module Lunar
  # rack.input for a request without a body: one shared, stateless object (always at its
  # end, nothing to close), because a StringIO per bodiless GET cost more than the rest of
  # the env. Implements what Rack 2.2 and 3.x Lint ask of an input.
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
  end
end
