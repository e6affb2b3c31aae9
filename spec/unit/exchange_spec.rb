# frozen_string_literal: true

require "unit_helper"
require "stringio"
require "lunar/request/server_context"
require "lunar/request/rack_env"
require "lunar/request/exchange"

# One request's life, against a fake native request: what reaches the client, and that
# body.close, async.close and rack.response_finished run exactly once, whoever ends first.
RSpec.describe Lunar::Exchange do
  let(:log) { StringIO.new }
  let(:context) { Lunar::ServerContext.new(errors: log) }
  let(:request) { FakeRequest.new }
  let(:finished) { [] }
  let(:async_close) { Lunar::Deferrable.new }
  let(:env) do
    done = finished
    { "REQUEST_METHOD" => "GET", "REQUEST_URI" => "/", "rack.errors" => log, "async.close" => async_close,
      "rack.response_finished" => [->(*args) { done << args }] }
  end
  let(:exchange) { described_class.new(request, env, context) }

  def async_closed?
    closed = false
    async_close.callback { closed = true }
    closed
  end

  it "writes an Array body in one answer, then runs the end once" do
    exchange.respond(200, { "x" => "1" }, %w[a b])
    expect(request.responses).to eq([[200, { "x" => "1" }, %w[a b]]])
    exchange.finish
    exchange.finish
    expect(finished).to eq([[env, 200, { "x" => "1" }, nil]])
    expect(async_closed?).to be(true)
  end

  it "streams an each body chunk by chunk, closes the writer and the body" do
    body = RecordingBody.new("one", "two")
    exchange.respond(200, {}, body)
    expect(request.writer.chunks).to eq(%w[one two])
    expect(request.writer.state).to eq(:closed)
    expect(body.calls).to eq(%i[each close])
    expect(finished.size).to eq(1)
  end

  it "stays pending after [-1, …] until async.callback answers; the first answer wins" do
    exchange.pend
    expect(context.registry[request.id]).to equal(exchange)
    expect(request).to be_answering_later # a client that shut its write side is taken as gone
    expect(request.responses).to be_empty
    exchange.respond_async([-1, {}, []])
    expect(request.responses).to be_empty
    exchange.respond_async([201, {}, ["late"]])
    exchange.respond_async([500, {}, ["again"]])
    expect(request.responses).to eq([[201, {}, ["late"]]])
    expect(log.string).to include("async.callback called again")
    expect(context.registry.size).to eq(0)
  end

  it "closes the connection without a byte for async.callback.call(nil)" do
    exchange.pend
    exchange.respond_async(nil)
    expect(request.closed).to be(true)
    expect(finished.size).to eq(1)
  end

  it "ends a deferrable body's response when it succeeds, not when each returns" do
    body = LaterBody.new
    exchange.respond(200, {}, body)
    body.call("tick")
    expect(request.writer.chunks).to eq(["tick"])
    expect(finished).to be_empty
    body.succeed
    expect(request.writer.state).to eq(:closed)
    expect(body.closed).to be(true)
    expect(finished.size).to eq(1)
  end

  it "on a disconnect: async.close succeeds, then the body fails (its errbacks run), once" do
    order = []
    body = LaterBody.new
    body.errback { order << :body_failed }
    async_close.callback { order << :async_close }
    exchange.respond(200, {}, body)
    request.client_left!
    exchange.client_gone
    exchange.client_gone
    expect(order).to eq(%i[async_close body_failed])
    expect(body.closed).to be(true)
    expect(finished.size).to eq(1)
  end

  it "answers 500 for an error before anything was sent, and aborts a stream after" do
    exchange.fail_with(RuntimeError.new("early"))
    expect(request.responses.first.first).to eq(500)
    expect(log.string).to include("RuntimeError: early")

    streaming = described_class.new(FakeRequest.new(2), env.merge("rack.response_finished" => []), context)
    body = LaterBody.new
    streaming.respond(200, {}, body)
    streaming.fail_with(RuntimeError.new("late"))
    expect(streaming.request.writer.state).to eq(:aborted) # the client sees a cut, not a complete body
  end

  it "answers 503 when the thread running the app is killed before it answered" do
    exchange.abandon
    expect(request.responses.first.first).to eq(503)
    expect(finished.size).to eq(1)
  end

  it "sends only the head to a HEAD request, and still ends on the body's succeed" do
    env["REQUEST_METHOD"] = "HEAD"
    body = LaterBody.new
    exchange.respond(200, {}, body)
    body.call("dropped")
    expect(request.writer.chunks).to be_empty
    body.succeed
    expect(finished.size).to eq(1)
  end
end
