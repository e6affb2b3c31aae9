# frozen_string_literal: true

module Lunar
  # What app code may raise that Lunar answers (a 500, or the connection cut, logged) and
  # survives: anything. Thin rescues Exception around app.call and answers 500; Puma's
  # threads survive it too. Not only StandardError: rack-timeout's RequestTimeoutException
  # is an Exception on purpose, so that apps do not rescue it, and an app may call `exit`;
  # neither may end a worker thread or the reactor (a server whose threads all died answers
  # nothing). Thread#kill is not an exception and still ends a thread.
  #
  # One exception is let through: Timeout's own unwinding. Ruby 3.3's timeout raises
  # Timeout::ExitException into the block and turns it into Timeout::Error where the block
  # began; rescued inside Lunar (an app calling async.callback within Timeout.timeout), the
  # app's timeout would never fire. (Ruby 3.1's timeout unwinds with throw, which no rescue
  # catches.)
  module AppError
    def self.===(error)
      error.is_a?(Exception) && !(defined?(::Timeout::ExitException) && error.is_a?(::Timeout::ExitException))
    end
  end

  APP_ERRORS = [AppError].freeze
end
