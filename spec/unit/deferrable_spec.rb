# frozen_string_literal: true

require "unit_helper"
require "lunar/async/deferrable"

# async.close without EventMachine: EM::Deferrable's semantics, thread-safe.
RSpec.describe Lunar::Deferrable do
  subject(:deferrable) { described_class.new }

  it "runs callbacks in order on succeed, with its arguments, and never errbacks" do
    ran = []
    deferrable.callback { |x| ran << [:first, x] }
    deferrable.callback { |x| ran << [:second, x] }
    deferrable.errback { ran << :errback }
    deferrable.succeed(42)
    expect(ran).to eq([[:first, 42], [:second, 42]])
  end

  it "runs errbacks on fail, never callbacks" do
    ran = []
    deferrable.callback { ran << :callback }
    deferrable.errback { |e| ran << e }
    deferrable.fail("broken")
    expect(ran).to eq(["broken"])
  end

  it "runs a block added after it settled at once, if it is of the settled kind" do
    deferrable.succeed(:done)
    ran = []
    deferrable.callback { |x| ran << x }
    deferrable.errback { ran << :errback }
    expect(ran).to eq([:done])
  end

  it "settles once: a second succeed or fail does nothing" do
    ran = []
    deferrable.callback { ran << :callback }
    deferrable.errback { ran << :errback }
    deferrable.succeed
    deferrable.fail
    deferrable.succeed
    expect(ran).to eq([:callback])
  end

  it "runs each callback once when threads add and settle at the same time" do
    count = 0
    lock = Mutex.new
    adders = Array.new(4) { Thread.new { 50.times { deferrable.callback { lock.synchronize { count += 1 } } } } }
    settler = Thread.new { deferrable.succeed }
    [*adders, settler].each(&:join)
    expect(count).to eq(200)
  end
end
