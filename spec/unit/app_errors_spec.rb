# frozen_string_literal: true

require "unit_helper"
require "timeout"
require "lunar/request/app_errors"

# What Lunar rescues from app code: everything but Timeout's own unwinding.
RSpec.describe Lunar::AppError do
  def rescued?(error)
    raise error
  rescue *Lunar::APP_ERRORS
    true
  rescue Exception # rubocop:disable Lint/RescueException -- what the spec is about
    false
  end

  # Exception subclasses, as apps and rack-timeout define them (what the spec is about).
  def exception_class = Class.new(Exception) # rubocop:disable Lint/InheritException

  it "rescues StandardError, ScriptError, SystemExit and any Exception subclass" do
    expect([RuntimeError.new, NotImplementedError.new, SystemExit.new, exception_class.new].map { |e| rescued?(e) }).to all(be(true))
  end

  it "lets Timeout's unwinding through (Ruby 3.3's Timeout::ExitException), so an app's Timeout.timeout still fires" do
    exit_exception = defined?(Timeout::ExitException) ? Timeout::ExitException : stub_const("Timeout::ExitException", exception_class)
    expect(rescued?(exit_exception.new)).to be(false)
  end
end
