# frozen_string_literal: true

require "unit_helper"
require "stringio"
require "lunar/async/reactor"

# Reactor#call from another thread, on a real EventMachine reactor (Lunar's own).
RSpec.describe Lunar::Reactor do
  def start_reactor
    described_class.start(errors: StringIO.new).tap { |reactor| reactors << reactor }
  end

  let(:reactors) { [] }

  after { reactors.each(&:stop) }

  it "runs the block on the reactor thread and hands back its value, or raises what it raised" do
    reactor = start_reactor
    expect(reactor.call { [Thread.current, 42] }).to eq([reactor.thread, 42])
    expect { reactor.call { raise ArgumentError, "from the reactor" } }.to raise_error(ArgumentError, "from the reactor")
  end

  # The window: the caller saw the reactor alive, then it ended before running the block.
  # EventMachine keeps the block queued past the end of its run; the caller used to wait
  # for it for ever.
  it "runs the block in the caller, once, when the reactor ends before getting to it" do
    reactor = start_reactor
    reactor.call { EM.stop_event_loop }
    reactor.thread.join
    allow(reactor).to receive(:alive?).and_return(true, false) # alive at the first look only

    runs = []
    expect(reactor.call { runs << Thread.current and :ran }).to eq(:ran)
    expect(runs).to eq([Thread.current])

    # The next reactor finds the block still queued and leaves it be.
    reactor.stop
    following = start_reactor
    following.call { nil } # runs after whatever was queued before it
    expect(runs).to eq([Thread.current])
  end
end
