# frozen_string_literal: true

require "eventmachine"

# The seed's DeferrableBody ("Async Response in Thin"): `each` keeps the block it is given,
# `call` writes chunks through it later, `succeed`/`fail` end the response.
class SeedBody
  include EventMachine::Deferrable

  def call(chunks)
    chunks.each { |chunk| @body_callback.call(chunk) }
  end

  def each(&block)
    @body_callback = block
  end
end
